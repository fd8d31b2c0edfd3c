// Kubernetes integration tests (test/kube/integration.test.ts) that pass on the reference etcd 3.6
// but are known to fail on Cairn, each with its cause. The runner asserts that every test that
// passed on etcd passed on Cairn except these, and that each of these still fails on Cairn (so the
// list cannot go stale: a fixed test must leave it). There is no retry: a test that fails on Cairn
// only sometimes is listed here too, with `flaky: true` and the cause found; its result is then
// printed but not judged. A flake is a bug to fix or to list, never a silent pass.
//
// Names are Go test names as `go test -v` prints them (subtests "Parent/child", blanks as "_"). A
// parent fails with its children: list the parent too when a listed subtest is all that fails it.

export interface ItestException {
  /** Go package as listed in hack/kube-integration.txt. */
  readonly pkg: string;
  /** Exact test names (top-level or subtest). */
  readonly tests: readonly string[];
  /** Why Cairn fails them: the server behaviour that differs from etcd's. */
  readonly cause: string;
  /** Fails on Cairn only sometimes (the cause says why): neither a pass nor a failure fails the suite. */
  readonly flaky?: true;
}

export const ITEST_EXCEPTIONS: readonly ItestException[] = [
  {
    pkg: 'k8s.io/kubernetes/test/integration/apiserver',
    tests: ['TestCustomResourceValidatorsWithSchemaConversion'],
    cause:
      'a race in the test on either store (kubernetes/kubernetes#135540, fixed upstream after 1.34 by polling, #139637): it updates a CRD ' +
      'and at once updates a CR, expecting the new schema; the apiserver learns the new schema from its CRD informer (a watch), ' +
      'and when that event arrives after the CR update the old schema is used. Seen on Cairn once under load average 10 ' +
      '(fresh-clone run beside four other jobs on 2 cores), passing on etcd in the same run',
    flaky: true,
  },
];
