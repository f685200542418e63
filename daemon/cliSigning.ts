import path from 'node:path';
import { Option, type Command } from 'commander';
import { SbeError } from './errors';
import { generateKeys, DEFAULT_RSA_BITS, KEY_FILE_NAMES, type KeyType } from './keys';
import { loadPublicKey } from './signing/keys';
import { ascPathOf, verifyDetached } from './signing/pgp';
import { verifyExport } from './signing/verify';

/**
 * The signing commands of the command line: `verify` and `keys generate`. Registered on the
 * main program by cli.ts; errors are thrown as SbeError and mapped to exit codes there
 * (an invalid signature is SIGNATURE_INVALID, exit 2).
 */

export interface SigningCommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const VERIFY_EXIT_CODES = `
Exit codes:
  0  every signature checked is valid
  1  unexpected error
  2  a signature is invalid or missing, a key is unusable, or the usage is wrong`;

const KEYS_EXIT_CODES = `
Exit codes:
  0  keys written
  1  unexpected error
  2  a key file exists already (nothing is overwritten), or the usage is wrong`;

function parseBits(value: string): number {
  if (!/^\d+$/.test(value)) throw new SbeError('USAGE', `--bits must be a whole number, not "${value}"`);
  return Number(value);
}

interface VerifyOptions {
  pubkey?: string;
  asc?: string | boolean;
  pgpPubkey?: string;
}

interface GenerateOptions {
  out: string;
  type: KeyType;
  bits?: number;
  pgp?: boolean;
  name?: string;
  email?: string;
}

export function registerSigningCommands(program: Command, io: SigningCommandIo): void {
  program
    .command('verify')
    .description('Check the signatures of an export file: the enveloped XML-DSig signature with --pubkey, the OpenPGP detached FILE.asc with --pgp-pubkey.')
    .argument('<file>', 'export file')
    .option('--pubkey <pem>', 'PEM public key (signing.pub.pem) or certificate to check the XML-DSig signature with')
    .option('--asc [file]', 'also check the OpenPGP detached signature (default FILE.asc); needs --pgp-pubkey')
    .option('--pgp-pubkey <key.asc>', 'armored OpenPGP public key (pgp-public.asc) to check the .asc with; implies --asc')
    .addHelpText('after', VERIFY_EXIT_CODES)
    .action(async (file: string, opts: VerifyOptions) => {
      if (opts.pubkey === undefined && opts.pgpPubkey === undefined) {
        throw new SbeError('USAGE', 'verify needs --pubkey PEM (XML-DSig) and/or --pgp-pubkey KEY.asc (OpenPGP)');
      }
      if (opts.asc !== undefined && opts.pgpPubkey === undefined) {
        throw new SbeError('USAGE', '--asc needs --pgp-pubkey KEY.asc, the OpenPGP public key to check it with');
      }
      if (opts.pubkey !== undefined) {
        const { key } = await loadPublicKey(opts.pubkey);
        const { keyName } = await verifyExport(file, key);
        io.stdout.write(`${file}: valid signature (${keyName === undefined ? 'no KeyName' : `KeyName ${keyName}`})\n`);
      }
      if (opts.pgpPubkey !== undefined) {
        const ascFile = typeof opts.asc === 'string' ? opts.asc : ascPathOf(file);
        const { signer } = await verifyDetached(file, ascFile, opts.pgpPubkey);
        io.stdout.write(`${file}: valid OpenPGP signature ${ascFile} (key ${signer})\n`);
      }
    });

  const keys = program.command('keys').description('Manage signing keys.');
  keys
    .command('generate')
    .description(
      `Create a signing key pair in DIR: ${KEY_FILE_NAMES.privateKey} (private, 0600) for output.signing.privateKey and ` +
        `${KEY_FILE_NAMES.publicKey} (0644) for the SIS; with --pgp also ${KEY_FILE_NAMES.pgpSecretKey} and ${KEY_FILE_NAMES.pgpPublicKey}. Never overwrites.`,
    )
    .requiredOption('--out <dir>', 'directory for the key files (created 0700 if missing)')
    .addOption(new Option('--type <type>', 'key algorithm: rsa (RSA-SHA256) or ecdsa (P-256, ECDSA-SHA256)').choices(['rsa', 'ecdsa']).default('rsa'))
    .option('--bits <n>', `RSA key size (default ${DEFAULT_RSA_BITS}, at least 2048); ECDSA is always 256`, parseBits)
    .option('--pgp', 'also create an OpenPGP key pair for detached .asc signatures')
    .option('--name <name>', 'OpenPGP user id name (with --pgp)')
    .option('--email <email>', 'OpenPGP user id e-mail (with --pgp)')
    .addHelpText('after', KEYS_EXIT_CODES)
    .action(async (opts: GenerateOptions) => {
      if (opts.pgp && (opts.name === undefined || opts.email === undefined)) {
        throw new SbeError('USAGE', '--pgp needs --name NAME and --email EMAIL for the OpenPGP user id');
      }
      if (!opts.pgp && (opts.name !== undefined || opts.email !== undefined)) {
        throw new SbeError('USAGE', '--name and --email are for the OpenPGP key: add --pgp');
      }
      const generated = await generateKeys({
        outDir: opts.out,
        type: opts.type,
        ...(opts.bits === undefined ? {} : { bits: opts.bits }),
        ...(opts.pgp ? { pgp: { name: opts.name!, email: opts.email! } } : {}),
      });
      const algorithm = generated.type === 'rsa' ? `RSA ${generated.bits} bits` : 'ECDSA P-256';
      const lines = [
        `wrote ${generated.privateKey} (${algorithm} private key, mode 0600): output.signing.privateKey`,
        `wrote ${generated.publicKey} (public key, mode 0644): give it to the SIS`,
      ];
      if (generated.pgpSecretKey && generated.pgpPublicKey) {
        lines.push(
          `wrote ${generated.pgpSecretKey} (OpenPGP secret key ${generated.pgpFingerprint}, mode 0600): output.signing.pgpKey`,
          `wrote ${generated.pgpPublicKey} (OpenPGP public key, mode 0644): give it to the SIS`,
        );
      }
      lines.push(`check an export with: xmlsec1 --verify --pubkey-pem:KEYNAME ${path.relative(process.cwd(), generated.publicKey) || generated.publicKey} FILE`);
      io.stdout.write(`${lines.join('\n')}\n`);
      if (generated.pgpSecretKey) io.stderr.write('note: the OpenPGP secret key has no passphrase; its file mode (0600) and owner are its protection\n');
    });
}
