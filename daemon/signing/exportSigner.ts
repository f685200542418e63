import type * as openpgp from 'openpgp';
import { loadSigningKey } from './keys';
import { signsPgp, signsXml, type SigningOptions } from './options';
import { loadPgpSigningKey, signDetached } from './pgp';
import { XmlDsigSigner, type XmlDsigKey } from './xmldsig';

/**
 * The one object the exporter needs for `output.signing`. Keys are loaded and checked when
 * it is created (before any data is read, so a bad key fails the run early with KEY_INVALID,
 * exit 2); then, for one export file:
 *
 *   write prolog()                                     (not fed)
 *   for each chunk of open(), user()*, summary():      write it, then signer.update(chunk)
 *   write signer.signatureBlock()                      ('' unless xmldsig)
 *   write close(); commit the file (final name)
 *   companions = await signer.signCompanions(finalPath) (FILE.asc beside it, for pgp)
 *   deliver [...companions, export]                    (the export last)
 */
export interface ExportSigner {
  readonly options: SigningOptions;
  /** Feeds a chunk written after the prolog. A no-op without XML-DSig. */
  update(chunk: string): void;
  /** The Signature element and its line end, to write before the root end tag; '' without XML-DSig. */
  signatureBlock(): string;
  /**
   * Signs the complete export under its final name: writes `FILE.asc` (atomically) for
   * OpenPGP. Returns the companion files to deliver before the export ([] without OpenPGP).
   */
  signCompanions(exportFile: string): Promise<string[]>;
}

class ProfileExportSigner implements ExportSigner {
  private readonly xml: XmlDsigSigner | undefined;

  constructor(
    readonly options: SigningOptions,
    xmlKey: XmlDsigKey | undefined,
    private readonly pgpKey: openpgp.PrivateKey | undefined,
  ) {
    this.xml = xmlKey ? new XmlDsigSigner(xmlKey) : undefined;
  }

  update(chunk: string): void {
    this.xml?.update(chunk);
  }

  signatureBlock(): string {
    return this.xml ? this.xml.signatureBlock() : '';
  }

  async signCompanions(exportFile: string): Promise<string[]> {
    return this.pgpKey ? [await signDetached(exportFile, this.pgpKey)] : [];
  }
}

/**
 * Loads the keys of `output.signing` (paths already absolute) and returns the signer of one
 * export, or undefined when the profile signs nothing. Create one per export file.
 */
export async function createExportSigner(options: SigningOptions | undefined): Promise<ExportSigner | undefined> {
  if (!options) return undefined;
  let xmlKey: XmlDsigKey | undefined;
  if (signsXml(options)) {
    // The profile schema requires both for xmldsig/both; this guards programmatic callers.
    if (!options.privateKey || !options.keyName) throw new TypeError('output.signing: xmldsig needs privateKey and keyName');
    const key = await loadSigningKey(options.privateKey, options.passphraseFile === undefined ? {} : { passphraseFile: options.passphraseFile });
    xmlKey = { key, keyName: options.keyName };
  }
  let pgpKey: openpgp.PrivateKey | undefined;
  if (signsPgp(options)) {
    if (!options.pgpKey) throw new TypeError('output.signing: pgp needs pgpKey');
    pgpKey = await loadPgpSigningKey(options.pgpKey, options.passphraseFile);
  }
  return new ProfileExportSigner(options, xmlKey, pgpKey);
}
