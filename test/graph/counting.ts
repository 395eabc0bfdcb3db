/**
 * Count the GPU objects a piece of code creates by wrapping the device's factory methods
 * (a test-only wrapper; call restore() afterwards).
 */
export function countDeviceObjects(device: GPUDevice): { buffers: number; bindGroups: number; encoders: number; restore(): void } {
  const counts = { buffers: 0, bindGroups: 0, encoders: 0 };
  const d = device as unknown as Record<string, unknown>;
  const originals = {
    createBuffer: device.createBuffer,
    createBindGroup: device.createBindGroup,
    createCommandEncoder: device.createCommandEncoder,
  };
  const wrap = <K extends keyof typeof originals>(name: K, key: keyof typeof counts) => {
    const fn = originals[name] as (...args: unknown[]) => unknown;
    d[name] = (...args: unknown[]) => {
      counts[key]++;
      return fn.apply(device, args);
    };
  };
  wrap('createBuffer', 'buffers');
  wrap('createBindGroup', 'bindGroups');
  wrap('createCommandEncoder', 'encoders');
  return {
    get buffers() {
      return counts.buffers;
    },
    get bindGroups() {
      return counts.bindGroups;
    },
    get encoders() {
      return counts.encoders;
    },
    restore() {
      for (const name of Object.keys(originals) as (keyof typeof originals)[]) delete d[name];
      // Own properties shadowed the prototype's methods; if the binding had them as own
      // properties, put them back.
      for (const [name, fn] of Object.entries(originals)) if (device[name as keyof typeof originals] !== fn) d[name] = fn;
    },
  };
}
