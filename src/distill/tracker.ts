import { ConfigError, ShapeError } from '../errors.js';
import { formatLayerMap } from './matching.js';

/** A map that took effect at a step (1-based teacher layers, as matchLayers returns them). */
export interface LayerMapChange {
  readonly step: number;
  readonly teacherLayers: readonly number[];
  /** The map in effect before this step; undefined for the first map. */
  readonly previous?: readonly number[];
  /** Student layers (1-based) whose teacher layer changed; all of them for the first map. */
  readonly changedLayers: readonly number[];
}

/** The state of a {@link LayerMapTracker}: JSON-serialisable, for training checkpoints. */
export interface LayerMapTrackerState {
  readonly studentLayers: number;
  readonly changes: readonly { readonly step: number; readonly teacherLayers: readonly number[] }[];
  readonly lastStep: number | null;
}

/** Rows of {@link LayerMapTracker.evolution}: the map in effect at each step, for a heatmap. */
export interface LayerMapEvolution {
  readonly steps: number[];
  readonly studentLayers: number;
  /** Row-major [steps.length, studentLayers]: teacher layer (1-based) of each student layer at each step. */
  readonly teacherLayers: Int32Array;
}

/** 1-based student layers whose teacher layer differs between two maps (all when there is no previous map). */
function changedLayersBetween(previous: readonly number[] | undefined, map: readonly number[]): number[] {
  return map.flatMap((m, r) => (previous === undefined || previous[r] !== m ? [r + 1] : []));
}

/**
 * Records the layer map that dynamic matching chooses at every step it is recomputed, keeping only
 * the changes (so a long run costs memory per change, not per step), and reports each change for
 * the log. A step's map stays in effect until the next recorded change.
 */
export class LayerMapTracker {
  private readonly changeList: { step: number; teacherLayers: number[] }[] = [];
  private last: number | null = null;

  /** @param studentLayers the length of every map recorded. */
  constructor(readonly studentLayers: number) {
    if (!Number.isInteger(studentLayers) || studentLayers < 1) throw new ConfigError(`LayerMapTracker: studentLayers must be a positive integer, got ${studentLayers}`);
  }

  /**
   * Record the map chosen at `step` (strictly after the last recorded step). Returns the change,
   * or undefined when the map equals the one in effect.
   */
  record(step: number, teacherLayers: readonly number[]): LayerMapChange | undefined {
    if (!Number.isSafeInteger(step) || step < 0) throw new ConfigError(`LayerMapTracker: step must be a non-negative integer, got ${step}`);
    if (this.last !== null && step <= this.last) throw new ConfigError(`LayerMapTracker: step ${step} recorded after step ${this.last}; steps must increase`);
    if (teacherLayers.length !== this.studentLayers) {
      throw new ShapeError(`LayerMapTracker: map at step ${step} has ${teacherLayers.length} entries, expected ${this.studentLayers} student layers`);
    }
    for (const [r, m] of teacherLayers.entries()) {
      if (!Number.isInteger(m) || m < 1) throw new ShapeError(`LayerMapTracker: map at step ${step}: student layer ${r + 1} -> ${m}, expected a 1-based teacher layer`);
    }
    this.last = step;
    const previous = this.current();
    const changedLayers = changedLayersBetween(previous, teacherLayers);
    if (changedLayers.length === 0) return undefined;
    const map = [...teacherLayers];
    this.changeList.push({ step, teacherLayers: map });
    return { step, teacherLayers: map, changedLayers, ...(previous && { previous }) };
  }

  /** The map in effect now; undefined before the first record. */
  current(): readonly number[] | undefined {
    return this.changeList[this.changeList.length - 1]?.teacherLayers;
  }

  /** The map in effect at `step` (the last change at or before it); undefined before the first. */
  at(step: number): readonly number[] | undefined {
    // Changes are few (a handful per run); a linear scan from the end is enough.
    for (let k = this.changeList.length - 1; k >= 0; k--) if (this.changeList[k]!.step <= step) return this.changeList[k]!.teacherLayers;
    return undefined;
  }

  /** Every change so far, oldest first. */
  changes(): LayerMapChange[] {
    return this.changeList.map((c, k) => {
      const previous = this.changeList[k - 1]?.teacherLayers;
      const changedLayers = changedLayersBetween(previous, c.teacherLayers);
      return { step: c.step, teacherLayers: c.teacherLayers, changedLayers, ...(previous && { previous }) };
    });
  }

  /**
   * The map at each of `steps` (default: every `every`-th step from the first recorded step to
   * the last, `every` default 1), as a steps x student-layers matrix for a heatmap. Steps before
   * the first record are rejected (no map was in effect).
   */
  evolution(steps?: readonly number[], every = 1): LayerMapEvolution {
    const first = this.changeList[0]?.step;
    if (first === undefined || this.last === null) throw new ConfigError('LayerMapTracker: no map recorded yet');
    if (!Number.isInteger(every) || every < 1) throw new ConfigError(`LayerMapTracker: every must be a positive integer, got ${every}`);
    const rows = steps ? [...steps] : Array.from({ length: Math.floor((this.last - first) / every) + 1 }, (_, k) => first + k * every);
    const out = new Int32Array(rows.length * this.studentLayers);
    rows.forEach((step, k) => {
      const map = this.at(step);
      if (!map) throw new ConfigError(`LayerMapTracker: step ${step} is before the first recorded map (step ${first})`);
      out.set(map, k * this.studentLayers);
    });
    return { steps: rows, studentLayers: this.studentLayers, teacherLayers: out };
  }

  /** The state, for a checkpoint. */
  state(): LayerMapTrackerState {
    return { studentLayers: this.studentLayers, changes: this.changeList.map((c) => ({ step: c.step, teacherLayers: [...c.teacherLayers] })), lastStep: this.last };
  }

  /** A tracker that continues from a state taken by {@link LayerMapTracker.state}. */
  static fromState(state: LayerMapTrackerState): LayerMapTracker {
    const tracker = new LayerMapTracker(state.studentLayers);
    // Replaying validates the (possibly parsed) state with record()'s own checks.
    for (const c of state.changes) tracker.record(c.step, c.teacherLayers);
    if (state.lastStep !== null) {
      if (!Number.isSafeInteger(state.lastStep) || (tracker.last !== null && state.lastStep < tracker.last)) {
        throw new ConfigError(`LayerMapTracker state: lastStep ${state.lastStep} is before the last change (step ${tracker.last})`);
      }
      tracker.last = state.lastStep;
    }
    return tracker;
  }
}

/** One log line for a change: "step 120: layer map 1→3 2→5 3→9 4→12 (layers 2, 3 changed)". */
export function formatLayerMapChange(change: LayerMapChange): string {
  const which = change.previous === undefined ? 'initial' : `layer${change.changedLayers.length > 1 ? 's' : ''} ${change.changedLayers.join(', ')} changed`;
  return `step ${change.step}: layer map ${formatLayerMap(change.teacherLayers)} (${which})`;
}
