import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { generateKeys } from '../../../daemon/keys';
import { AtomicOutputFile } from '../../../daemon/outputFile';
import { createExportSigner } from '../../../daemon/signing/exportSigner';
import { verifyDetached } from '../../../daemon/signing/pgp';
import { verifyExport } from '../../../daemon/signing/verify';
import { ExportXmlWriter } from '../../../daemon/xmlWriter';
import { HEADER, KEY_NAME, TRICKY_USERS, USERS, runTool, tempDir, xmlsecVerify } from './helpers';

describe('daemon/signing/exportSigner (the exporter\'s sequence of calls)', () => {
  let dir: string;

  before(() => {
    dir = tempDir();
  });

  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('prolog, open/users/summary fed, signatureBlock, close, commit, signCompanions: xmlsec1, gpg and verify accept it', async () => {
    const keys = await generateKeys({ outDir: path.join(dir, 'keys'), type: 'rsa', bits: 2048, pgp: { name: 'Library', email: 'library@example.edu' } });
    const signer = await createExportSigner({ method: 'both', privateKey: keys.privateKey, keyName: KEY_NAME, pgpKey: keys.pgpSecretKey! });
    expect(signer).to.not.equal(undefined);

    const output = new AtomicOutputFile(path.join(dir, 'user-blocks-run.xml'));
    const writer = new ExportXmlWriter();
    await output.write(writer.prolog()); // not fed: outside the canonical form
    const write = async (chunk: string): Promise<void> => {
      await output.write(chunk);
      signer!.update(chunk);
    };
    await write(writer.open(HEADER));
    for (const user of [...USERS, ...TRICKY_USERS]) await write(writer.user(user));
    await write(writer.summary({ users: 4, blocks: 4, activeBalanceTotal: '12.50', skippedMissingMatchId: 0 }));
    await output.write(signer!.signatureBlock());
    await output.write(writer.close());
    await output.commit();
    const companions = await signer!.signCompanions(output.finalPath);
    expect(companions).to.deep.equal([`${output.finalPath}.asc`]);

    const xmlsec = await xmlsecVerify(output.finalPath, keys.publicKey);
    expect(xmlsec.code, xmlsec.output).to.equal(0);
    expect(await verifyExport(output.finalPath, fs.readFileSync(keys.publicKey, 'utf8'))).to.deep.equal({ valid: true, keyName: KEY_NAME });
    expect((await verifyDetached(output.finalPath, companions[0]!, keys.pgpPublicKey!)).valid).to.equal(true);
    const gnupgHome = fs.mkdtempSync(path.join(dir, 'gnupg-'));
    const env = { ...process.env, GNUPGHOME: gnupgHome };
    expect((await runTool('gpg', ['--batch', '--import', keys.pgpPublicKey!], env)).code).to.equal(0);
    expect((await runTool('gpg', ['--batch', '--verify', companions[0]!, output.finalPath], env)).code).to.equal(0);
    expect(fs.readdirSync(dir).filter((name) => name.startsWith('.'))).to.deep.equal([]); // no temp files left
  });

  it('signs nothing without output.signing', async () => {
    expect(await createExportSigner(undefined)).to.equal(undefined);
  });
});
