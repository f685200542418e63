import winston from 'winston';
import Transport from 'winston-transport';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'text' | 'json' | 'journal';

/** The logging surface the code depends on (winston's logger satisfies it). */
export interface Logger {
  error(message: string, fields?: Record<string, unknown>): unknown;
  warn(message: string, fields?: Record<string, unknown>): unknown;
  info(message: string, fields?: Record<string, unknown>): unknown;
  debug(message: string, fields?: Record<string, unknown>): unknown;
  child(fields: Record<string, unknown>): Logger;
}

/** syslog priorities that journald reads from a `<N>` line prefix. */
const PRIORITY: Record<string, number> = { error: 3, warn: 4, info: 6, debug: 7 };
const RESERVED = new Set(['level', 'message', 'timestamp', 'splat']);

function fieldText(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}

/** `key=value` fields in a stable order: profile and run first. */
function fields(info: Record<string, unknown>): string {
  const keys = Object.keys(info).filter((key) => !RESERVED.has(key) && info[key] !== undefined);
  keys.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  return keys.map((key) => ` ${key}=${fieldText(info[key])}`).join('');
}

function rank(key: string): number {
  return key === 'profile' ? 0 : key === 'run' ? 1 : 2;
}

/** One physical line per entry, whatever the message holds. */
function oneLine(text: unknown): string {
  return String(text).replace(/\r?\n/g, ' | ');
}

function formatFor(format: LogFormat): winston.Logform.Format {
  switch (format) {
    case 'json':
      return winston.format.combine(winston.format.timestamp(), winston.format.json());
    case 'journal':
      // journald adds its own timestamps.
      return winston.format.printf((info) => `<${PRIORITY[info.level] ?? 6}>${oneLine(info.message)}${oneLine(fields(info))}`);
    case 'text':
      return winston.format.combine(
        winston.format.timestamp(),
        winston.format.printf((info) => `${String(info.timestamp)} ${info.level.padEnd(5)} ${oneLine(info.message)}${oneLine(fields(info))}`),
      );
  }
}

/** Writes each formatted line to a stream (stderr by default), synchronously ordered. */
class LineStreamTransport extends Transport {
  constructor(private readonly stream: NodeJS.WritableStream, options: Transport.TransportStreamOptions) {
    super(options);
  }

  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    this.stream.write(`${String(info[Symbol.for('message')])}\n`);
    next();
  }
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Default: `journal` when stderr is connected to journald (`$JOURNAL_STREAM`), else `text`. */
  format?: LogFormat;
  stream?: NodeJS.WritableStream;
}

export function defaultLogFormat(env: NodeJS.ProcessEnv = process.env): LogFormat {
  return env.JOURNAL_STREAM ? 'journal' : 'text';
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const format = options.format ?? defaultLogFormat();
  return winston.createLogger({
    level: options.level ?? 'info',
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    format: formatFor(format),
    transports: [new LineStreamTransport(options.stream ?? process.stderr, {})],
  }) as unknown as Logger;
}

/**
 * A logger whose level and format can change while the daemon runs (SIGHUP reload). Child
 * loggers keep their fields and follow the change: they hold the switch, not a winston logger.
 */
export interface ReconfigurableLogger extends Logger {
  reconfigure(options: LoggerOptions): void;
}

class SwitchedLogger implements Logger {
  constructor(
    private readonly holder: { current: Logger },
    private readonly fields: Record<string, unknown>,
  ) {}

  private merged(fields: Record<string, unknown> | undefined): Record<string, unknown> {
    return { ...this.fields, ...fields };
  }

  error(message: string, fields?: Record<string, unknown>): unknown {
    return this.holder.current.error(message, this.merged(fields));
  }

  warn(message: string, fields?: Record<string, unknown>): unknown {
    return this.holder.current.warn(message, this.merged(fields));
  }

  info(message: string, fields?: Record<string, unknown>): unknown {
    return this.holder.current.info(message, this.merged(fields));
  }

  debug(message: string, fields?: Record<string, unknown>): unknown {
    return this.holder.current.debug(message, this.merged(fields));
  }

  child(fields: Record<string, unknown>): Logger {
    return new SwitchedLogger(this.holder, this.merged(fields));
  }
}

export function createReconfigurableLogger(options: LoggerOptions = {}): ReconfigurableLogger {
  const holder = { current: createLogger(options) };
  const root = new SwitchedLogger(holder, {});
  return Object.assign(root, {
    reconfigure(next: LoggerOptions): void {
      holder.current = createLogger(next);
    },
  });
}
