// Ctrl-C during training: the first one asks the loop to stop after the current step (and save),
// the second one quits at once.
import { constants } from 'node:os';

/** The stop request a training loop polls between steps; see {@link onInterrupt}. */
export interface InterruptRequest {
  /** True once the first interrupt arrived: finish the current step, save, and stop. */
  readonly requested: boolean;
  /** Aborted at the first interrupt, for code that takes an AbortSignal. */
  readonly signal: AbortSignal;
  /** Stop listening; later signals get their default behaviour again. Safe to call twice. */
  dispose(): void;
}

/** What {@link onInterrupt}'s handler is told. */
export interface InterruptEvent {
  /** The signal received (SIGINT for Ctrl-C). */
  readonly signal: NodeJS.Signals;
  /** True for the first signal (the loop will stop after this step); false for the second (exiting now). */
  readonly graceful: boolean;
}

/** Options of {@link onInterrupt}. */
export interface InterruptOptions {
  /** Signals to handle; default SIGINT only (add SIGTERM for schedulers that stop jobs with it). */
  readonly signals?: readonly NodeJS.Signals[];
  /** Where signals are listened for; default `process`. */
  readonly emitter?: Pick<NodeJS.EventEmitter, 'on' | 'off'>;
  /** Called with 128 + the signal number on the second signal; default `process.exit`. */
  readonly exit?: (code: number) => void;
}

/**
 * Listen for Ctrl-C while a training loop runs. The first signal sets `requested` (and aborts
 * `signal`) and calls `handler` with `graceful: true`, e.g. to print "finishing the step and
 * saving; Ctrl-C again to quit"; the loop checks `requested` after each step, saves and returns.
 * A second signal calls `handler` with `graceful: false` and exits with status 130 (128 + SIGINT)
 * without waiting. Call `dispose()` when the loop is over.
 */
export function onInterrupt(handler: (event: InterruptEvent) => void, opts: InterruptOptions = {}): InterruptRequest {
  const emitter = opts.emitter ?? process;
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const signals = opts.signals ?? ['SIGINT'];
  const controller = new AbortController();
  const listener = (signal: NodeJS.Signals) => {
    if (!controller.signal.aborted) {
      controller.abort(new Error(`${signal}: stop requested`));
      handler({ signal, graceful: true });
      return;
    }
    handler({ signal, graceful: false });
    exit(128 + constants.signals[signal]);
  };
  for (const s of signals) emitter.on(s, listener);
  return {
    get requested() {
      return controller.signal.aborted;
    },
    signal: controller.signal,
    dispose() {
      for (const s of signals) emitter.off(s, listener);
    },
  };
}
