import type { JsonSchema } from '../ruleApi';

/**
 * `output.signing` of a profile (SPEC 6): which signatures an export gets and the keys that
 * make them. The schema below is the one the profile validator and the generated docs use.
 */

export const SIGNING_METHODS = ['xmldsig', 'pgp', 'both'] as const;
export type SigningMethod = (typeof SIGNING_METHODS)[number];

/** `output.signing` after validation; every path is absolute (resolved against the profile file). */
export interface SigningOptions {
  method: SigningMethod;
  /** PEM private key (RSA >= 2048 bits or EC P-256) for the XML-DSig signature. */
  privateKey?: string;
  /** `KeyInfo/KeyName` of the XML-DSig signature: how the SIS picks the public key. */
  keyName?: string;
  /** Armored OpenPGP secret key for the detached `.asc` signature. */
  pgpKey?: string;
  /** File whose first line is the passphrase of an encrypted `privateKey` or `pgpKey`. */
  passphraseFile?: string;
}

/** The option names that are file system paths (resolved relative to the profile file). */
export const SIGNING_PATH_FIELDS = ['privateKey', 'pgpKey', 'passphraseFile'] as const satisfies readonly (keyof SigningOptions)[];

export function signsXml(options: SigningOptions): boolean {
  return options.method === 'xmldsig' || options.method === 'both';
}

export function signsPgp(options: SigningOptions): boolean {
  return options.method === 'pgp' || options.method === 'both';
}

/** Letters, digits and a few separators: the KeyName is typed on xmlsec1 command lines. */
export const KEY_NAME_PATTERN = '^[A-Za-z0-9](?:[A-Za-z0-9 ._:@+/-]{0,126}[A-Za-z0-9._:@+/-])?$';

const pathProperty = (description: string): JsonSchema => ({ type: 'string', minLength: 1, description });

export const signingSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  description:
    'Signatures of the export file. `xmldsig`: an enveloped XML-DSig signature (exclusive C14N, SHA-256) as the last child of the root; ' +
    '`pgp`: an OpenPGP detached signature FILE.asc delivered before the file; `both`: the two.',
  properties: {
    method: {
      enum: [...SIGNING_METHODS],
      default: 'xmldsig',
      description: '`xmldsig` needs `privateKey` and `keyName`; `pgp` needs `pgpKey`; `both` needs all three.',
    },
    privateKey: pathProperty(
      'PEM private key for XML-DSig: RSA of at least 2048 bits (RSA-SHA256) or EC P-256 (ECDSA-SHA256); relative to the profile file. ' +
        'Create one with `sis-block-export keys generate --out DIR`.',
    ),
    keyName: {
      type: 'string',
      pattern: KEY_NAME_PATTERN,
      patternHint: 'must be 1-128 letters, digits, spaces and . _ : @ + / -, starting and ending with a letter, digit or one of . _ : @ + / -',
      description: 'Written as the signature\'s `KeyInfo/KeyName`; the SIS uses it to pick the public key (e.g. `library-2026`).',
    },
    pgpKey: pathProperty('Armored OpenPGP secret key (`pgp-secret.asc`) for the detached `.asc` signature; relative to the profile file.'),
    passphraseFile: pathProperty(
      'File holding the passphrase (its first line) of an encrypted `privateKey` or `pgpKey`; relative to the profile file. Never put a passphrase in the profile.',
    ),
  },
  // `method` defaults to xmldsig, so "not pgp" (rather than "is xmldsig") also covers an
  // absent method, whatever order Ajv applies defaults and conditions in. The `true`
  // properties satisfy Ajv's strictRequired (a required key must be declared beside it).
  allOf: [
    {
      if: { properties: { method: { const: 'pgp' } }, required: ['method'] },
      then: { properties: { pgpKey: true }, required: ['pgpKey'] },
      else: { properties: { privateKey: true, keyName: true }, required: ['privateKey', 'keyName'] },
    },
    {
      if: { properties: { method: { const: 'both' } }, required: ['method'] },
      then: { properties: { pgpKey: true }, required: ['pgpKey'] },
    },
  ],
};
