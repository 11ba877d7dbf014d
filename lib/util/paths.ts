/**
 * How paths appear in messages and tables. By default as absolute paths (the CLI's messages name files
 * unambiguously). The notebooks set a root (their checkout): paths under it are then shown relative to the
 * working directory, so executed notebooks read `../runs/...` and not the location of the machine that
 * ran them.
 */
import * as path from 'node:path';

let relativeUnder: string | undefined;

/** Show paths under `root` relative to the working directory from now on; undefined restores absolute paths. */
export function showPathsRelativeUnder(root: string | undefined): void {
  relativeUnder = root === undefined ? undefined : path.resolve(root);
}

/** `p` as messages show it (see showPathsRelativeUnder). */
export function displayPath(p: string): string {
  const absolute = path.resolve(p);
  const root = relativeUnder;
  if (root === undefined || (absolute !== root && !absolute.startsWith(root + path.sep))) return absolute;
  return path.relative(process.cwd(), absolute) || '.';
}
