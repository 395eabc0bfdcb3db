// Ctrl-C handling for training: first signal requests a graceful stop, second exits, dispose
// restores the previous listeners. Signals are emitted as events, so the test process lives.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { onInterrupt, type InterruptEvent } from '../../src/cli/interrupt.js';

describe('onInterrupt', () => {
  it('first SIGINT on process requests a stop after the step; the second exits with 130; dispose unregisters', () => {
    const before = process.listenerCount('SIGINT');
    const events: InterruptEvent[] = [];
    const exits: number[] = [];
    const interrupt = onInterrupt((e) => events.push(e), { exit: (code) => exits.push(code) });
    expect(process.listenerCount('SIGINT')).toBe(before + 1);
    expect(interrupt.requested).toBe(false);
    expect(interrupt.signal.aborted).toBe(false);

    process.emit('SIGINT', 'SIGINT');
    expect(interrupt.requested).toBe(true);
    expect(interrupt.signal.aborted).toBe(true);
    expect(events).toEqual([{ signal: 'SIGINT', graceful: true }]);
    expect(exits).toEqual([]);

    process.emit('SIGINT', 'SIGINT');
    expect(events).toEqual([{ signal: 'SIGINT', graceful: true }, { signal: 'SIGINT', graceful: false }]);
    expect(exits).toEqual([130]);

    interrupt.dispose();
    interrupt.dispose();
    expect(process.listenerCount('SIGINT')).toBe(before);
  });

  it('handles the signals asked for (SIGTERM: exit 143) on the emitter given, and none after dispose', () => {
    const emitter = new EventEmitter();
    const events: InterruptEvent[] = [];
    const exits: number[] = [];
    const interrupt = onInterrupt((e) => events.push(e), { emitter, signals: ['SIGINT', 'SIGTERM'], exit: (code) => exits.push(code) });
    emitter.emit('SIGTERM', 'SIGTERM');
    expect(interrupt.requested).toBe(true);
    emitter.emit('SIGINT', 'SIGINT');
    expect(exits).toEqual([130]);
    emitter.emit('SIGTERM', 'SIGTERM');
    expect(exits).toEqual([130, 143]);
    expect(events.map((e) => e.graceful)).toEqual([true, false, false]);

    interrupt.dispose();
    expect(emitter.listenerCount('SIGINT') + emitter.listenerCount('SIGTERM')).toBe(0);
    const fresh = onInterrupt(() => undefined, { emitter, exit: (code) => exits.push(code) });
    fresh.dispose();
    emitter.emit('SIGINT', 'SIGINT');
    expect(fresh.requested).toBe(false);
    expect(exits).toEqual([130, 143]);
  });
});
