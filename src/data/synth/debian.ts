import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DqwError } from '../../errors.js';

// What the synthetic corpus needs from the system: Debian packages, asked of dpkg.

const run = promisify(execFile);

/**
 * A Debian package the synthetic corpus needs (espeak-ng, a sentence package) is not installed.
 * `packageName` is the package; the message says how to install it and what it is for.
 */
export class MissingPackageError extends DqwError {
  constructor(
    readonly packageName: string,
    purpose: string,
  ) {
    super(`Debian package ${packageName} is not installed (${purpose}): install it with \`apt-get install ${packageName}\` (or run scripts/setup.sh)`);
  }
}

/**
 * The installed version of Debian package `name`.
 * @throws MissingPackageError naming `name` and `purpose` when it is not installed, or when
 * there is no dpkg (not a Debian system).
 */
export async function installedPackageVersion(name: string, purpose: string): Promise<string> {
  try {
    const { stdout } = await run('dpkg-query', ['-W', '-f=${db:Status-Status}\t${Version}', name]);
    const [status, version] = stdout.split('\t');
    if (status === 'installed' && version) return version;
  } catch {
    // dpkg-query exits non-zero for packages it has never heard of, and is absent off Debian.
  }
  throw new MissingPackageError(name, purpose);
}

/** The paths Debian package `name` installed (`dpkg-query -L`); call {@link installedPackageVersion} first. */
export async function packageFiles(name: string): Promise<string[]> {
  const { stdout } = await run('dpkg-query', ['-L', name], { maxBuffer: 64 << 20 });
  return stdout.split('\n').filter((p) => p.startsWith('/'));
}
