import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { generatedFiles, rulesReference } from '../../daemon/docs';
import { packageRoot } from '../../daemon/paths';
import { builtinRegistry } from '../../daemon/registry';
import { compileSchema } from '../../daemon/validator';

describe('daemon/docs', () => {
  it('README reference sections and profiles/profile.schema.json are up to date (npm run docs)', () => {
    for (const { file, expected, actual } of generatedFiles()) {
      expect(actual, `${path.relative(packageRoot, file)} is stale: run npm run docs`).to.equal(expected);
    }
  });

  it('documents every rule, and every documented example is valid', () => {
    const reference = rulesReference();
    for (const rule of builtinRegistry.rules.values()) {
      expect(reference).to.include(`### \`${rule.id}\` (stage: ${rule.stage})`);
    }
    const snippets = [...reference.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => parse(match[1]!) as { rule: string; with?: object }[]);
    expect(snippets.length).to.be.greaterThan(builtinRegistry.rules.size);
    for (const [entry] of snippets) {
      const rule = builtinRegistry.rules.get(entry!.rule)!;
      expect(compileSchema(rule.schema)(structuredClone(entry!.with ?? {})), JSON.stringify(entry)).to.equal(true);
    }
  });

  it('the README opens with the two fresh-machine commands', () => {
    const readme = fs.readFileSync(path.join(packageRoot, 'README.md'), 'utf8');
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)![1]!;
    expect(firstBlock).to.match(/^npm ci && npm run demo/m);
    expect(firstBlock).to.match(/bash \.ci\/run/);
    expect(fs.readFileSync(path.join(packageRoot, '.ci', 'run'), 'utf8')).to.match(/^npm test$/m);
  });
});
