/**
 * Money is exact: integer minor units as bigint end to end. Databases return sums as
 * numbers (SQLite), strings (PostgreSQL bigint/numeric, MariaDB DECIMAL) or bigint; all are
 * read without going through floating point.
 */

const minorDigitsCache = new Map<string, number>();

export function isKnownCurrency(code: string): boolean {
  return /^[A-Z]{3}$/.test(code) && Intl.supportedValuesOf('currency').includes(code);
}

/** ISO 4217 minor digits of a currency, from the ICU data Node ships (USD 2, JPY 0, KWD 3). */
export function minorDigits(currency: string): number {
  let digits = minorDigitsCache.get(currency);
  if (digits === undefined) {
    digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
    minorDigitsCache.set(currency, digits);
  }
  return digits;
}

/**
 * Parses a major-unit decimal ("5", "5.0", "5.00", "-3.5") into minor units. Refuses more
 * decimals than the currency has rather than rounding: a threshold of "5.005 USD" is a typo.
 */
export function parseMajorAmount(text: string, currency: string): bigint {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (!match) throw new RangeError(`"${text}" is not a decimal amount (use a form like "5.00")`);
  const [, sign, whole, fraction = ''] = match;
  const digits = minorDigits(currency);
  if (fraction.length > digits && /[^0]/.test(fraction.slice(digits))) {
    throw new RangeError(`"${text}" has more decimals than ${currency} allows (${digits})`);
  }
  const minor = BigInt(whole!) * 10n ** BigInt(digits) + BigInt((fraction.slice(0, digits) || '0').padEnd(digits, '0') || '0');
  return sign === '-' ? -minor : minor;
}

/** Reads a database integer (number, bigint, or decimal string without a fraction) exactly. */
export function toMinor(value: unknown): bigint {
  if (value === null || value === undefined) return 0n;
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new RangeError(`amount ${value} is not an exact integer of minor units`);
    return BigInt(value);
  }
  if (typeof value === 'string') {
    const match = /^(-?\d+)(?:\.0*)?$/.exec(value.trim());
    if (!match) throw new RangeError(`amount "${value}" is not an integer of minor units`);
    return BigInt(match[1]!);
  }
  throw new RangeError(`amount of type ${typeof value} cannot be read`);
}

/** Formats minor units with the currency's digits: 1250n USD -> "12.50", -300n -> "-3.00". */
export function formatMinor(minor: bigint, currency: string): string {
  const digits = minorDigits(currency);
  const negative = minor < 0n;
  const magnitude = (negative ? -minor : minor).toString().padStart(digits + 1, '0');
  const whole = magnitude.slice(0, magnitude.length - digits);
  const fraction = digits > 0 ? `.${magnitude.slice(magnitude.length - digits)}` : '';
  return `${negative ? '-' : ''}${whole}${fraction}`;
}
