/**
 * The error catalogue: every error a user can cause has a stable code and the exit code
 * the command line maps it to (SPEC 9). Errors are wrapped with the phase that failed and
 * keep their cause.
 */

export const ExitCode = {
  ok: 0,
  unexpected: 1,
  invalidInput: 2,
  sourceDatabase: 3,
  deliveryFailed: 4,
  deliveryRefused: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const ErrorCodes = {
  USAGE: { exit: ExitCode.invalidInput, summary: 'invalid command-line usage' },
  CONFIG_INVALID: { exit: ExitCode.invalidInput, summary: 'invalid configuration file' },
  PROFILE_INVALID: { exit: ExitCode.invalidInput, summary: 'invalid profile' },
  PROFILE_NOT_FOUND: { exit: ExitCode.invalidInput, summary: 'profile not found' },
  RULE_INVALID: { exit: ExitCode.invalidInput, summary: 'invalid site rule module' },
  KEY_INVALID: { exit: ExitCode.invalidInput, summary: 'invalid or unreadable key' },
  SIGNATURE_INVALID: { exit: ExitCode.invalidInput, summary: 'signature does not verify' },
  SOURCE_CONNECT: { exit: ExitCode.sourceDatabase, summary: 'cannot connect to the source database' },
  SOURCE_QUERY: { exit: ExitCode.sourceDatabase, summary: 'source database query failed' },
  SOURCE_DATA: { exit: ExitCode.sourceDatabase, summary: 'source data cannot be read' },
  OUTPUT_WRITE: { exit: ExitCode.unexpected, summary: 'cannot write the export file' },
  DELIVERY_FAILED: { exit: ExitCode.deliveryFailed, summary: 'delivery failed; export kept in the outbox' },
  DELIVERY_REFUSED: { exit: ExitCode.deliveryRefused, summary: 'delivery refused' },
  BUSY: { exit: ExitCode.unexpected, summary: 'another run of the profile is in progress' },
  ABORTED: { exit: ExitCode.unexpected, summary: 'run cut short by a shutdown; resumed at the next start' },
  INTERNAL: { exit: ExitCode.unexpected, summary: 'unexpected error' },
} as const;
export type ErrorCode = keyof typeof ErrorCodes;

/** A position in a YAML source file, 1-based. */
export interface SourceIssue {
  file: string;
  line?: number;
  column?: number;
  /** JSON-pointer-like path of the offending value, e.g. `/rules/1/with/days`. */
  path?: string;
  message: string;
}

export function formatIssue(issue: SourceIssue): string {
  const where = [issue.file, issue.line, issue.column].filter((part) => part !== undefined).join(':');
  const path = issue.path ? ` (at ${issue.path})` : '';
  return `${where}: ${issue.message}${path}`;
}

export class SbeError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;
  readonly issues: readonly SourceIssue[];

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; issues?: readonly SourceIssue[] } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SbeError';
    this.code = code;
    this.exitCode = ErrorCodes[code].exit;
    this.issues = options.issues ?? [];
  }

  /** The message followed by one line per source issue. */
  describe(): string {
    return [this.message, ...this.issues.map((issue) => `  ${formatIssue(issue)}`)].join('\n');
  }
}

/**
 * Re-throws `error` as an SbeError of `code` with the phase that failed in front of its
 * message, unless it already is an SbeError (whose code wins: the innermost phase knows best).
 */
export function wrapError(code: ErrorCode, phase: string, error: unknown): SbeError {
  if (error instanceof SbeError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return new SbeError(code, `${phase}: ${detail}`, { cause: error });
}

export function exitCodeOf(error: unknown): ExitCode {
  return error instanceof SbeError ? error.exitCode : ExitCode.unexpected;
}
