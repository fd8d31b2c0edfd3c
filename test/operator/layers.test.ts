// The operator's direction rule (shared/DESIGN.md section 2) as hack/operator-layers.json says it,
// enforced by hack/check-layers.ts in `npm run lint`: the tree is clean, and the rules bite.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkFile, parseRules, RULE_FILES } from '../../hack/check-layers.js';
import { REPO_ROOT } from '../harness/procs.js';

const rules = parseRules(JSON.parse(readFileSync(join(REPO_ROOT, 'hack', 'operator-layers.json'), 'utf8')) as unknown);

describe('operator layer rules', () => {
  it('are checked by the lint', () => {
    assert.ok(RULE_FILES.includes('hack/operator-layers.json'));
  });

  it('refuse the wrong direction and unlisted packages', () => {
    const cases: Array<[string, string, boolean]> = [
      ['operator/plan/x.ts', "import { a } from '../observe/index.js';", false],
      ['operator/plan/x.ts', "import { a } from '../api/index.js';", true],
      ['operator/plan/x.ts', "import * as k8s from '@kubernetes/client-node';", false],
      ['operator/api/x.ts', "import { plan } from '../plan/index.js';", false],
      ['operator/observe/x.ts', "import { act } from '../act/index.js';", false],
      ['operator/controller/x.ts', "import { act } from '../act/index.js';", true],
      ['operator/member/x.ts', "import { plan } from '../plan/index.js';", false],
      ['operator/etcd/x.ts', "import { X } from '../../proto/gen/etcdserverpb.js';", true],
      ['operator/etcd/x.ts', "import { X } from '../../server/node/node.js';", false],
      ['operator/main.ts', "import { Controller } from './controller/index.js';", true],
    ];
    for (const [path, text, ok] of cases) {
      const v = checkFile(rules, { path, text });
      assert.equal(v.length === 0, ok, `${path}: ${text} -> ${JSON.stringify(v)}`);
    }
  });
});
