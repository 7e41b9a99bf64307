// Reads a member's strait.yaml (from --config FILE, else <dir>/strait.yaml when it exists) and
// builds its validated configuration. The rules live in src/config/member-config.ts; this file
// only does the reading.

import { existsSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join, resolve } from 'node:path';
import { StraitError } from '../errors.ts';
import {
  buildMemberConfig, type FlagValues, type MachineFacts, type MemberConfig, type MemberRole,
} from '../config/member-config.ts';
import { CONFIG_FILE_NAME } from './member-files.ts';

/** strait.yaml is a short hand-written file; anything larger is a mistake (wrong --config). */
export const CONFIG_FILE_BYTES_MAX = 1024 * 1024;

export interface MemberLocation {
  /** Absolute member directory. */
  readonly dir: string;
  /** Absolute path of the config file, when one is used. */
  readonly configFile: string | undefined;
}

/**
 * Where a member lives: `--dir`, else `./<name>` as gfsh does, else the current directory.
 * `--config` wins over `<dir>/strait.yaml`.
 */
export function locateMember(dirFlag: string | undefined, nameFlag: string | undefined, configFlag: string | undefined): MemberLocation {
  const dir = resolve(dirFlag ?? nameFlag ?? '.');
  if (configFlag !== undefined) {
    const configFile = resolve(configFlag);
    if (!existsSync(configFile)) {
      throw new StraitError('STRAIT_CONFIG_INVALID', { source: 'command line', key: '--config', reason: `${configFile} does not exist` });
    }
    return { dir, configFile };
  }
  const inDir = join(dir, CONFIG_FILE_NAME);
  return { dir, configFile: existsSync(inDir) ? inDir : undefined };
}

/** This process's environment and this machine's interfaces, for `${NAME}` and bind-address selectors. */
export function machineFacts(): MachineFacts {
  return { environment: process.env, interfaces: networkInterfaces() as MachineFacts['interfaces'], readFile: (path) => readFileSync(path, 'utf8') };
}

export function loadMemberConfig(role: MemberRole, flags: FlagValues, location: MemberLocation): MemberConfig {
  if (location.configFile === undefined) return buildMemberConfig(role, flags, undefined, machineFacts());
  let text: string;
  try {
    const bytes = readFileSync(location.configFile);
    if (bytes.length > CONFIG_FILE_BYTES_MAX) {
      throw new StraitError('STRAIT_CONFIG_INVALID', {
        source: location.configFile,
        key: '(file)',
        reason: `larger than ${CONFIG_FILE_BYTES_MAX} bytes`,
      });
    }
    text = bytes.toString('utf8');
  } catch (cause) {
    if (cause instanceof StraitError) throw cause;
    throw new StraitError(
      'STRAIT_CONFIG_INVALID',
      { source: location.configFile, key: '(file)', reason: `cannot be read: ${(cause as Error).message}` },
      { cause },
    );
  }
  return buildMemberConfig(role, flags, { path: location.configFile, text }, machineFacts());
}
