// Node's test runner: the explorer's theory.mjs and contour.mjs. Run by tests/test_explore.py,
// which passes Python's values on a random grid in FEATUREFATE_THEORY_CASES (a JSON file) and
// reads the largest deviation back from FEATUREFATE_THEORY_REPORT.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { test } from "node:test";

const T = await import(new URL("../../src/featurefate/explore/theory.mjs", import.meta.url));
const { contourSegments } = await import(
  new URL("../../src/featurefate/explore/contour.mjs", import.meta.url)
);

const TOLERANCE = 1e-9;
const fromJson = (v) => (typeof v === "string" ? Number(v.replace("inf", "Infinity")) : v);

function methodOf(c) {
  const [method, variant] = c.method.split("-");
  const options = {
    sourceNorm: c.source_norm,
    targetNorm: c.target_norm,
    depth: c.depth,
    dim: c.dim,
  };
  if (method === "ridge") options.lam = c.lam;
  if (method === "finetune") options.variant = variant;
  return [method, options];
}

// |got - want| relative to the magnitude of what was computed: for an error its own value, for T
// the largest of |T| and the two errors it is the difference of
function deviation(got, want, scale) {
  if (!Number.isFinite(want) || !Number.isFinite(got)) {
    return Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)) ? 0 : Infinity;
  }
  const size = Math.max(Math.abs(want), scale);
  return size === 0 ? Math.abs(got) : Math.abs(got - want) / size;
}

test("agrees with the Python closed forms on a random grid", (t) => {
  const path = process.env.FEATUREFATE_THEORY_CASES;
  if (!path) {
    t.skip("FEATUREFATE_THEORY_CASES not set (tests/test_explore.py sets it)");
    return;
  }
  const cases = JSON.parse(readFileSync(path, "utf8"));
  assert.ok(cases.length > 100);
  const worst = { errors: 0, transferability: 0, transferabilityOwn: 0, count: cases.length };
  const failures = [];
  for (const c of cases) {
    const [method, options] = methodOf(c);
    const e = T.errors(method, c.alpha, c.theta, c.sigma, options);
    const want = {
      scratch: fromJson(c.scratch),
      transfer: fromJson(c.transfer),
      transferability: fromJson(c.transferability),
    };
    const scale = Math.max(
      ...[want.scratch, want.transfer, want.transferability].filter(Number.isFinite).map(Math.abs),
      0,
    );
    const dScratch = deviation(e.scratch, want.scratch, 0);
    const dTransfer = deviation(e.transfer, want.transfer, 0);
    const dT = deviation(e.transferability, want.transferability, scale);
    const dOwn = deviation(e.transferability, want.transferability, 0);
    worst.errors = Math.max(worst.errors, dScratch, dTransfer);
    worst.transferability = Math.max(worst.transferability, dT);
    if (Math.abs(want.transferability) > 1e-6 || !Number.isFinite(want.transferability)) {
      worst.transferabilityOwn = Math.max(worst.transferabilityOwn, dOwn);
    }
    // the grid path gives the same numbers as the scalar one
    const grid = T.transferabilityGrid(method, [c.alpha], [c.theta], c.sigma, options)[0];
    const dGrid = deviation(grid, e.transferability, scale);
    if (Math.max(dScratch, dTransfer, dT) > TOLERANCE || dGrid > 1e-12) {
      failures.push({ case: c, got: e, grid, dScratch, dTransfer, dT, dGrid });
    }
  }
  if (process.env.FEATUREFATE_THEORY_REPORT) {
    writeFileSync(process.env.FEATUREFATE_THEORY_REPORT, JSON.stringify(worst));
  }
  assert.deepEqual(failures.slice(0, 3), [], `${failures.length} cases deviate`);
});

test("the grid equals the scalar function cell by cell", () => {
  const alphas = [0.1, 0.5, 0.99, 1.0, 1.3, 2.0];
  const thetas = [0, 0.4, Math.PI / 3, Math.PI / 2];
  const settings = [
    ["linear", {}],
    ["linear", { dim: 40 }],
    ["ridge", { lam: 0.3, sourceNorm: 1.4, depth: 3 }],
    ["ridge", { lam: 0.3, dim: 25 }],
    ["finetune", { variant: "paper", targetNorm: 0.7 }],
    ["finetune", { variant: "exact", sourceNorm: 1.2, depth: 3 }],
  ];
  for (const [method, options] of settings) {
    const grid = T.transferabilityGrid(method, alphas, thetas, 0.4, options);
    thetas.forEach((theta, j) =>
      alphas.forEach((alpha, i) => {
        const want = T.transferability(method, alpha, theta, 0.4, options);
        assert.ok(Object.is(grid[j * alphas.length + i], want), `${method} ${alpha} ${theta}`);
      }),
    );
  }
});

test("identities and limits", () => {
  // eq. (13): T_lt = R_sc - sin^2(theta) in the limit with unit norms
  assert.equal(T.transferability("linear", 0.5, 0.7, 0.2), 0.5 + (0.04 * 0.5) / 0.5 - Math.sin(0.7) ** 2);
  // paper and corrected fine-tuning coincide without noise and with equal norms (c = 1)
  assert.ok(Math.abs(T.finetuneScale(0.4, 0.0) - 1) < 1e-15);
  // c = sqrt(1.5) at sigma = 1, alpha = 0.5; break-even angle 52.24 degrees
  assert.ok(Math.abs(T.finetuneScale(0.5, 1.0) - Math.sqrt(1.5)) < 1e-15);
  const angle = (T.finetuneBreakEvenAngle(0.5, 1.0, { variant: "exact" }) * 180) / Math.PI;
  assert.ok(Math.abs(angle - 52.239) < 1e-3, String(angle));
  // docs/theory.md example: sigma = 0.2, theta = pi/4 gives (0.5486, 0.9114) and 1.08
  const r = T.negativeTransferRegions(Math.PI / 4, 0.2);
  assert.ok(Math.abs(r.alphaLower - 0.5486) < 1e-4 && Math.abs(r.alphaUpper - 0.9114) < 1e-4);
  assert.ok(Math.abs(r.alphaThreshold - 1.08) < 1e-12);
  // T = 0 at the closed-form boundaries
  for (const a of [r.alphaLower, r.alphaUpper, r.alphaThreshold]) {
    assert.ok(Math.abs(T.transferability("linear", a, Math.PI / 4, 0.2)) < 1e-12);
  }
  // ridge with lam = 0 is linear transfer, at finite size too
  for (const dim of [null, 30]) {
    const lin = T.linearTransferError(0.8, 0.9, 0.3, { dim });
    const ridge = T.ridgeTransferError(0.8, 0.9, 0.3, 0.0, { dim });
    assert.ok(Math.abs(ridge - lin) <= 1e-14 * lin, `${dim}`);
  }
  // finite-size forms approach the limit like 1/D
  for (const [method, options] of [["linear", {}], ["ridge", { lam: 0.2 }], ["finetune", { variant: "exact" }]]) {
    const limit = T.transferability(method, 0.5, 0.8, 0.5, options);
    const gap = (dim) => Math.abs(T.transferability(method, 0.5, 0.8, 0.5, { ...options, dim }) - limit);
    assert.ok(gap(400) < gap(100) / 2.5 && gap(400) < 0.02, `${method} ${gap(100)} ${gap(400)}`);
  }
  // the quadrature is converged: rules twice as fine agree to 1e-7
  const once = T.finetuneCoupledTerm(12, 30, 0.9, 0.8, 1.3, 0.8, 2, 1);
  const twice = T.finetuneCoupledTerm(12, 30, 0.9, 0.8, 1.3, 0.8, 2, 2);
  assert.ok(Math.abs(once - twice) < 1e-7 * Math.abs(once), `${once} ${twice}`);
  // fine-tuning does nothing once the data pin w down
  assert.equal(T.transferability("finetune", 1.5, 1.0, 0.3, { variant: "exact", dim: 20 }), 0);
});

test("invalid values name the parameter, the value and the range", () => {
  assert.throws(() => T.transferability("linear", -1, 0.5, 0.1), /alpha must be a finite number in \(0, inf\); got -1/);
  assert.throws(() => T.transferability("linear", 1, 4, 0.1), /theta .* \[0, pi\]; got 4/);
  assert.throws(() => T.transferability("ridge", 1, 0.5, 0.1), /lam is required/);
  assert.throws(() => T.transferability("linear", 1, 0.5, 0.1, { lam: 1 }), /lam applies to method 'ridge' only/);
  assert.throws(() => T.transferability("finetune", 1, 0.5, 0.1, { variant: "x" }), /variant must be one of paper, exact/);
  assert.throws(() => T.transferability("foo", 1, 0.5, 0.1), /method must be one of/);
  assert.throws(() => T.transferability("linear", 1, 0.5, 0.1, { dim: 2.5 }), /dim must be an integer >= 1/);
  assert.throws(() => T.scratchError(0.5, 0.1, { targetNorm: 0 }), /targetNorm .* \(0, inf\); got 0/);
});

test("marching squares finds the zero contour of a circle", () => {
  const n = 81;
  const values = new Float64Array(n * n);
  for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) values[j * n + i] = Math.hypot(i - 40, j - 40) - 25;
  const seg = contourSegments(values, n, n, 0);
  assert.ok(seg.length > 4 * 100);
  let length = 0;
  for (let k = 0; k < seg.length; k += 4) {
    for (const [x, y] of [[seg[k], seg[k + 1]], [seg[k + 2], seg[k + 3]]]) {
      assert.ok(Math.abs(Math.hypot(x - 40, y - 40) - 25) < 0.02);
    }
    length += Math.hypot(seg[k + 2] - seg[k], seg[k + 3] - seg[k + 1]);
  }
  assert.ok(Math.abs(length - 2 * Math.PI * 25) < 0.5, String(length));
  // no contour in a field of one sign; NaN cells are skipped; +inf counts as positive
  assert.equal(contourSegments(new Float64Array(9).fill(1), 3, 3).length, 0);
  assert.equal(contourSegments(Float64Array.of(-1, NaN, -1, 1), 2, 2).length, 0);
  assert.deepEqual(contourSegments(Float64Array.of(-1, Infinity, -1, Infinity), 2, 2), [0.5, 0, 0.5, 1]);
});
