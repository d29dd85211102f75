// Closed-form theory of transfer in deep linear networks (Section 3 of "Features are fate"), in
// plain JavaScript for the phase-diagram explorer. A port of featurefate.theory.linear: the same
// formulas, the same names in camelCase, agreeing with the Python functions to 1e-9 relative
// (tests/test_explore.py runs tests/js/theory.test.mjs on a random grid of Python values).
//
// Conventions (docs/theory.md, Conventions): x ~ N(0, I_D), alpha = n / D, teachers
// y = beta . x + eps with eps ~ N(0, sigma^2), the target at angle theta (radians) from the source,
// R = |w - beta_t|^2 (label noise excluded) and T = E[R_scratch] - E[R_transfer] (eq. 7): T > 0 is
// positive transfer. Without `dim` every function is the limit D -> infinity at fixed alpha; with
// `dim` it is the exact expectation at D = dim and n = alpha * dim (docs/theory.md).
//
// Covered: scratch training (eq. 10), linear transfer (eq. 12), ridge linear transfer
// (eqs. 14-15, the finite-n chi-square moments by the same exp-sinh quadrature), fine-tuning
// (eq. 16) with the paper's endpoint and the corrected one (docs/theory.md, Fine-tuning), in the
// limit and at finite D, including the corrected endpoint's five-variable quadrature at finite D
// (docs/theory.md, Finite-D fine-tuning), any depth L >= 2 and non-unit norms. Not covered:
// pretraining on finite source data (Python's alpha_source / sigma_source).
//
// Every function takes scalars. transferabilityGrid evaluates a whole (theta, alpha) grid with the
// alpha-only factors formed once per column, for the interactive diagram.

export const METHODS = ["linear", "ridge", "finetune"];
export const FINETUNE_VARIANTS = ["paper", "exact"];

// ------------------------------------------------------------------------------------------
// validation: one Error per bad value, naming the parameter, the value and the valid range

function fmtInterval(low, high, lowOpen, highOpen) {
  const f = (x) => (x === Math.PI ? "pi" : x === Infinity ? "inf" : x === -Infinity ? "-inf" : String(x));
  const left = lowOpen || low === -Infinity ? "(" : "[";
  const right = highOpen || high === Infinity ? ")" : "]";
  return `${left}${f(low)}, ${f(high)}${right}`;
}

function real(name, value, { low = -Infinity, high = Infinity, lowOpen = false } = {}) {
  const ok =
    typeof value === "number" &&
    Number.isFinite(value) &&
    (lowOpen ? value > low : value >= low) &&
    value <= high;
  if (!ok) {
    throw new RangeError(
      `${name} must be a finite number in ${fmtInterval(low, high, lowOpen, false)}; got ${value}`,
    );
  }
  return value;
}

function integer(name, value, low, allowNull = false) {
  if (allowNull && (value === null || value === undefined)) return null;
  if (!Number.isInteger(value) || value < low) {
    throw new RangeError(`${name} must be an integer >= ${low}; got ${value}`);
  }
  return value;
}

function choice(name, value, options) {
  if (!options.includes(value)) {
    throw new RangeError(`${name} must be one of ${options.join(", ")}; got ${value}`);
  }
  return value;
}

const alphaOf = (x) => real("alpha", x, { low: 0, lowOpen: true });
const thetaOf = (x) => real("theta", x, { low: 0, high: Math.PI });
const sigmaOf = (x) => real("sigma", x, { low: 0 });
const normOf = (x, name) => real(name, x, { low: 0, lowOpen: true });
const lamOf = (x) => real("lam", x, { low: 0 });
const dimOf = (x) => integer("dim", x, 1, true);
const depthOf = (x) => integer("depth", x, 2);

function common(options) {
  const o = options || {};
  return {
    sourceNorm: normOf(o.sourceNorm ?? 1.0, "sourceNorm"),
    targetNorm: normOf(o.targetNorm ?? 1.0, "targetNorm"),
    depth: depthOf(o.depth ?? 2),
    dim: dimOf(o.dim ?? null),
  };
}

// ------------------------------------------------------------------------------------------
// building blocks

/** n = alpha * D, snapped to the whole number it misses only by rounding (Python _sample_count). */
export function sampleCount(alpha, dim) {
  const n = alpha * dim;
  const whole = Math.round(n);
  return Math.abs(n - whole) <= 1e-9 * Math.max(whole, 1.0) ? whole : n;
}

function unexplainedFraction(alpha) {
  return Math.max(1.0 - alpha, 0.0);
}

/** E|X^+ eps|^2: sigma^2 alpha/(1-alpha) below 1, sigma^2/(alpha-1) above; inverse-Wishart at finite D. */
function noiseError(alpha, sigma, dim) {
  const s2 = sigma ** 2;
  if (s2 === 0.0) return 0.0;
  if (dim === null) {
    if (alpha < 1.0) return (s2 * alpha) / (1.0 - alpha);
    if (alpha > 1.0) return s2 / (alpha - 1.0);
    return Infinity;
  }
  const n = sampleCount(alpha, dim);
  if (n < dim - 1.0) return (s2 * n) / (dim - n - 1.0);
  if (n > dim + 1.0) return (s2 * dim) / (n - dim - 1.0);
  return Infinity;
}

// Exp-sinh nodes s = exp(pi/2 sinh t), |t| <= 4.5, step 1/64, and log(h * s * ds/dt) (log of
// the weight times s, the factor both moments share).
const DE_STEP = 1.0 / 64.0;
const DE_TMAX = 4.5;
const DE_COUNT = Math.ceil((DE_TMAX + DE_STEP / 2 + DE_TMAX) / DE_STEP);
const DE_S = new Float64Array(DE_COUNT);
const DE_LOG_WEIGHT = new Float64Array(DE_COUNT);
const DE_LOG1P2S = new Float64Array(DE_COUNT);
for (let i = 0; i < DE_COUNT; i++) {
  const t = -DE_TMAX + i * DE_STEP;
  const s = Math.exp(0.5 * Math.PI * Math.sinh(t));
  DE_S[i] = s;
  DE_LOG_WEIGHT[i] = Math.log(DE_STEP * s * s * 0.5 * Math.PI * Math.cosh(t));
  DE_LOG1P2S[i] = Math.log1p(2.0 * s);
}

/**
 * [E(c/(u+c))^2, E u/(u+c)^2] for u ~ chi^2_n (docs/theory.md, Ridge linear transfer): from the
 * Laplace transform E e^{-su} = (1+2s)^{-n/2}, c^2 int s e^{-sc} (1+2s)^{-n/2} ds and
 * n int s e^{-sc} (1+2s)^{-n/2-1} ds by the exp-sinh rule; c = 0 gives [0, 1/(n-2)].
 */
export function chi2RidgeMoments(n, c) {
  if (!(c > 0.0)) return [0.0, n > 2.0 ? 1.0 / (n - 2.0) : Infinity];
  const key = `${n} ${c}`;
  const known = MOMENTS.get(key);
  if (known !== undefined) return known;
  if (MOMENTS.size >= 8192) MOMENTS.clear();
  const value = chi2RidgeQuadrature(n, c);
  MOMENTS.set(key, value);
  return value;
}

// The moments of the last few thousand (n, c): a diagram's columns when sigma or the angle moves.
const MOMENTS = new Map();

function chi2RidgeQuadrature(n, c) {
  let first = 0.0;
  let second = 0.0;
  const half = 0.5 * n;
  for (let i = 0; i < DE_COUNT; i++) {
    const base = DE_LOG_WEIGHT[i] - DE_S[i] * c;
    first += Math.exp(base - half * DE_LOG1P2S[i]);
    second += Math.exp(base - (half + 1.0) * DE_LOG1P2S[i]);
  }
  return [c ** 2 * first, n * second];
}

// ------------------------------------------------------------------------------------------
// errors

/**
 * Scratch training, Theorem 3.6, eq. (10): (1-alpha)|beta_t|^2 + sigma^2 alpha/(1-alpha) below 1,
 * sigma^2/(alpha-1) above, infinite at alpha = 1 when sigma > 0. With dim: (1-n/D)_+ |beta_t|^2
 * plus the inverse-Wishart noise term.
 */
export function scratchError(alpha, sigma, options = {}) {
  alphaOf(alpha);
  sigmaOf(sigma);
  const { targetNorm, dim } = common(options);
  return unexplainedFraction(alpha) * targetNorm ** 2 + noiseError(alpha, sigma, dim);
}

/**
 * Linear transfer, Theorem 3.7, eq. (12): |beta_perp|^2 in the limit; exactly
 * |beta_perp|^2 + (|beta_perp|^2 + sigma^2)/(n - 2) at finite n (infinite for n <= 2).
 */
export function linearTransferError(alpha, theta, sigma, options = {}) {
  alphaOf(alpha);
  thetaOf(theta);
  sigmaOf(sigma);
  const { targetNorm, dim } = common(options);
  return linearFromParts(alpha, sigma, (targetNorm * Math.sin(theta)) ** 2, dim);
}

function linearFromParts(alpha, sigma, perp2, dim) {
  if (dim === null) return perp2;
  const n = sampleCount(alpha, dim);
  const noise = perp2 + sigma ** 2;
  const inverse = n > 2.0 ? 1.0 / (n - 2.0) : Infinity;
  return noise === 0.0 ? perp2 : perp2 + noise * inverse;
}

/**
 * Ridge linear transfer, Theorem 3.8, eqs. (14)-(15), lam_eff = lam / |beta_s|^(2(L-1)/L):
 * |beta_perp|^2 + |beta_par|^2 lam_eff^2/(1+lam_eff)^2 in the limit; at finite n
 * |beta_perp|^2 + |beta_par|^2 E[(n lam_eff/(u + n lam_eff))^2] + (|beta_perp|^2 + sigma^2) E[u/(u + n lam_eff)^2].
 */
export function ridgeTransferError(alpha, theta, sigma, lam, options = {}) {
  alphaOf(alpha);
  thetaOf(theta);
  sigmaOf(sigma);
  lamOf(lam);
  const { sourceNorm, targetNorm, depth, dim } = common(options);
  const lamEff = lam / sourceNorm ** ((2.0 * (depth - 1)) / depth);
  const par2 = (targetNorm * Math.cos(theta)) ** 2;
  const perp2 = (targetNorm * Math.sin(theta)) ** 2;
  return ridgeFromParts(alpha, sigma, lamEff, par2, perp2, dim, null);
}

function ridgeMomentsAt(alpha, lamEff, dim) {
  if (dim === null) return [(lamEff / (1.0 + lamEff)) ** 2, 0.0];
  const n = sampleCount(alpha, dim);
  return chi2RidgeMoments(n, n * lamEff);
}

function ridgeFromParts(alpha, sigma, lamEff, par2, perp2, dim, moments) {
  const [shrink, spread] = moments ?? ridgeMomentsAt(alpha, lamEff, dim);
  if (dim === null) return perp2 + par2 * shrink;
  const noise = perp2 + sigma ** 2;
  return perp2 + par2 * shrink + (noise === 0.0 ? 0.0 : noise * spread);
}

/**
 * The factor c of the corrected fine-tuning endpoint X^+ y + c (I - P) beta_s (docs/theory.md,
 * Fine-tuning): c > 0 with |beta_s|^2 c^(2L/(L-1)) = a c^2 + b; closed form at L = 2, Newton's
 * method in u = c^(2/(L-1)) from above the root otherwise.
 */
export function solveFinetuneScale(a, b, options = {}) {
  const sourceNorm = options.sourceNorm ?? 1.0;
  const depth = options.depth ?? 2;
  return solveScale(a, b, sourceNorm ** 2, depth);
}

function solveScale(a, b, scale, depth) {
  if (depth === 2) return Math.sqrt((a + Math.sqrt(a ** 2 + 4.0 * scale * b)) / (2.0 * scale));
  let u = Math.max((2.0 * a) / scale, ((2.0 * b) / scale) ** (1.0 / depth));
  for (let k = 0; k < 100; k++) {
    let power = 1.0; // u^(L-2) by products: a pow call per step would dominate the quadrature
    for (let p = 2; p < depth; p++) power *= u;
    const high = power * u;
    const value = scale * high * u - a * high - b;
    const slope = depth * scale * high - (depth - 1) * a * power;
    const step = slope > 0.0 ? value / slope : 0.0;
    u = u - step;
    if (Math.abs(step) <= 1e-15 * Math.max(u, 1e-300)) break;
  }
  return Math.sqrt(u ** (depth - 1));
}

/**
 * c at the typical a = (1-alpha)|beta_s|^2 and b = alpha|beta_t|^2 + E|X^+ eps|^2 (NaN for
 * alpha >= 1, or n >= D - 1 at finite size).
 */
export function finetuneScale(alpha, sigma, options = {}) {
  alphaOf(alpha);
  sigmaOf(sigma);
  const { sourceNorm, targetNorm, depth, dim } = common(options);
  return scaleAt(alpha, sigma, sourceNorm, targetNorm, depth, dim);
}

function scaleAt(alpha, sigma, sourceNorm, targetNorm, depth, dim) {
  const below = dim === null ? alpha < 1.0 : sampleCount(alpha, dim) < dim - 1.0;
  if (!below) return NaN;
  const a = (1.0 - alpha) * sourceNorm ** 2;
  const b = alpha * targetNorm ** 2 + noiseError(alpha, sigma, dim);
  return solveScale(a, b, sourceNorm ** 2, depth);
}

// ------------------------------------------------------------------------------------------
// the finite-D corrected fine-tuning: E[c^2 a - 2 c g] over five scalar laws
// (docs/theory.md, Finite-D fine-tuning; Python featurefate.theory._finetune_law)

const GJ_ORDER = 10;
const WIDTH_STEPS = 1.2;
const MAX_STEP = 0.5;
const DROP = 38.0;

/** Eigenvalues and the first components of the unit eigenvectors of a symmetric tridiagonal
 * matrix (implicit QL with Wilkinson shifts, rotating only the first row of the eigenvectors). */
function tridiagonalEigen(diag, off) {
  const n = diag.length;
  const d = Float64Array.from(diag);
  const e = new Float64Array(n);
  e.set(off);
  const z = new Float64Array(n);
  z[0] = 1.0;
  for (let l = 0; l < n; l++) {
    for (let iter = 0; ; iter++) {
      let m = l;
      while (m < n - 1) {
        const dd = Math.abs(d[m]) + Math.abs(d[m + 1]);
        if (Math.abs(e[m]) <= Number.EPSILON * dd) break;
        m++;
      }
      if (m === l) break;
      if (iter >= 100) throw new Error("tridiagonal eigenvalues did not converge");
      let g = (d[l + 1] - d[l]) / (2.0 * e[l]);
      let r = Math.hypot(g, 1.0);
      g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
      let s = 1.0;
      let c = 1.0;
      let p = 0.0;
      let deflated = false;
      for (let i = m - 1; i >= l; i--) {
        let f = s * e[i];
        const b = c * e[i];
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0.0) {
          d[i + 1] -= p;
          e[m] = 0.0;
          deflated = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2.0 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        f = z[i + 1];
        z[i + 1] = s * z[i] + c * f;
        z[i] = c * z[i] - s * f;
      }
      if (deflated) continue;
      d[l] -= p;
      e[l] = g;
      e[m] = 0.0;
    }
  }
  return { values: d, first: z };
}

/** Gauss-Jacobi nodes on [-1, 1], weights summing to 1, weight (1-x)^alpha (1+x)^beta (Golub-Welsch). */
function gaussJacobi(order, alpha, beta) {
  const diag = new Float64Array(order);
  const off = new Float64Array(Math.max(order - 1, 0));
  for (let k = 0; k < order; k++) {
    const s = 2.0 * k + alpha + beta;
    diag[k] = (beta ** 2 - alpha ** 2) / (s * (s + 2.0));
  }
  diag[0] = (beta - alpha) / (alpha + beta + 2.0);
  for (let j = 1; j < order; j++) {
    const sj = 2.0 * j + alpha + beta;
    off[j - 1] =
      (4.0 * j * (j + alpha) * (j + beta) * (j + alpha + beta)) / (sj ** 2 * (sj + 1) * (sj - 1));
  }
  if (order > 1) {
    off[0] =
      (4.0 * (1.0 + alpha) * (1.0 + beta)) / ((2.0 + alpha + beta) ** 2 * (3.0 + alpha + beta));
  }
  for (let j = 0; j < off.length; j++) off[j] = Math.sqrt(off[j]);
  const { values, first } = tridiagonalEigen(diag, off);
  let total = 0.0;
  const w = new Float64Array(order);
  for (let k = 0; k < order; k++) {
    w[k] = first[k] ** 2;
    total += w[k];
  }
  for (let k = 0; k < order; k++) w[k] /= total;
  return [values, w];
}

function betaRule(p, q, order) {
  if (p <= 0.0) return [Float64Array.of(0.0), Float64Array.of(1.0)];
  if (q <= 0.0) return [Float64Array.of(1.0), Float64Array.of(1.0)];
  const [x, w] = gaussJacobi(order, q - 1.0, p - 1.0);
  return [x.map((v) => (1.0 + v) / 2.0), w];
}

function symmetricRule(exponent, order) {
  if (exponent <= -1.0) return [Float64Array.of(-1.0, 1.0), Float64Array.of(0.5, 0.5)];
  return gaussJacobi(order, exponent, exponent);
}

// log(1 + e^x), as NumPy's logaddexp(0, x)
function softplus(x) {
  if (x === 0.0) return Math.LN2;
  return x < 0.0 ? Math.log1p(Math.exp(x)) : x + Math.log1p(Math.exp(-x));
}

/** Trapezoidal nodes in logit(B), B ~ Beta(p, q), covering where the log density (+ tilt x) is
 * within DROP of its peak; normalised weights. */
function logitRule(p, q, tilt, refine) {
  const qEff = q - tilt;
  const mode = Math.log(p / qEff);
  const width = Math.sqrt((p + q) / (p * qEff));
  const peak = (p + tilt) * mode - (p + q) * softplus(mode);
  const drop = (x) => peak - ((p + tilt) * x - (p + q) * softplus(x));
  const ends = [];
  for (const sign of [-1.0, 1.0]) {
    let span = width;
    while (drop(mode + sign * span) < DROP) span *= 2.0;
    let lo = 0.0;
    let hi = span;
    for (let k = 0; k < 60; k++) {
      const mid = 0.5 * (lo + hi);
      if (drop(mode + sign * mid) < DROP) lo = mid;
      else hi = mid;
    }
    ends.push(mode + sign * hi);
  }
  const step = Math.min(MAX_STEP, width / WIDTH_STEPS) / refine;
  const count = Math.ceil((ends[1] - ends[0]) / step) + 1;
  const x = new Float64Array(count);
  const spacing = (ends[1] - ends[0]) / (count - 1);
  for (let i = 0; i < count; i++) x[i] = i * spacing + ends[0];
  x[count - 1] = ends[1];
  const logW = x.map((v) => p * v - (p + q) * softplus(v));
  let top = -Infinity;
  for (const v of logW) top = Math.max(top, v);
  const w = logW.map((v) => Math.exp(v - top));
  let total = 0.0;
  for (const v of w) total += v;
  return [x, w.map((v) => v / total)];
}

/**
 * E[c^2 a - 2 c g] at n samples in dim dimensions, a = |(I-P) beta_s|^2,
 * g = beta_s^T (I-P) beta_t, b = |X^+ y|^2, c solving |beta_s|^2 c^(2L/(L-1)) = a c^2 + b: a
 * tensor quadrature over gamma ~ Beta(m/2, n/2) and F = |X^+ eps|^2/sigma^2 (trapezoidal rule in
 * logit gamma and log F) and eta, xi, t (Gauss-Jacobi), m = D - n (docs/theory.md, Finite-D
 * fine-tuning). Valid for 1 <= n < dim - 1 when sigma > 0 and n < dim when sigma = 0.
 * `refine` multiplies every rule's resolution.
 */
export function finetuneCoupledTerm(
  n, dim, theta, sigma, sourceNorm = 1.0, targetNorm = 1.0, depth = 2, refine = 1,
) {
  const m = dim - n;
  const order = GJ_ORDER * refine;
  const cos = Math.cos(theta);
  const sin = Math.sin(theta);
  const [xGamma, wGamma] = logitRule(m / 2.0, n / 2.0, 0.0, refine);
  const [xF, wF] =
    sigma > 0.0
      ? logitRule(n / 2.0, (dim - n + 1.0) / 2.0, 0.5, refine)
      : [Float64Array.of(-Infinity), Float64Array.of(1.0)];
  let eta, wEta, xi, wXi;
  if (sin === 0.0) {
    [eta, wEta, xi, wXi] = [[0.0], [1.0], [0.0], [1.0]];
  } else {
    [eta, wEta] = symmetricRule((dim - 4.0) / 2.0, order);
    [xi, wXi] = betaRule((m - 1.0) / 2.0, (n - 1.0) / 2.0, order);
  }
  const [t, wT] =
    sigma === 0.0 ? [[0.0], [1.0]] : symmetricRule((n - 3.0) / 2.0, order);

  const nGeo = eta.length * xi.length;
  const etaG = new Float64Array(nGeo);
  const xiG = new Float64Array(nGeo);
  const wGeo = new Float64Array(nGeo);
  for (let i = 0, k = 0; i < eta.length; i++) {
    for (let j = 0; j < xi.length; j++, k++) {
      etaG[k] = eta[i];
      xiG[k] = xi[j];
      wGeo[k] = wEta[i] * wXi[j];
    }
  }
  const nNoise = xF.length * t.length;
  const rhoG = new Float64Array(nNoise);
  const tG = new Float64Array(nNoise);
  const wNoise = new Float64Array(nNoise);
  for (let i = 0, k = 0; i < xF.length; i++) {
    const rho = sigma * Math.exp(0.5 * xF[i]);
    for (let j = 0; j < t.length; j++, k++) {
      rhoG[k] = rho;
      tG[k] = t[j];
      wNoise[k] = wF[i] * wT[j];
    }
  }
  const scale = sourceNorm ** 2;
  const cos2 = cos ** 2;
  const sin2 = sin ** 2;
  let total = 0.0;
  const b = new Float64Array(nNoise);
  for (let ig = 0; ig < xGamma.length; ig++) {
    const gamma = 1.0 / (1.0 + Math.exp(-xGamma[ig]));
    const root = Math.sqrt(gamma * (1.0 - gamma));
    const r = targetNorm * Math.sqrt(1.0 - gamma);
    for (let j = 0; j < nNoise; j++) {
      b[j] = Math.max(r ** 2 + 2.0 * r * rhoG[j] * tG[j] + rhoG[j] ** 2, 0.0);
    }
    let outer = 0.0;
    for (let k = 0; k < nGeo; k++) {
      const along = etaG[k] ** 2 * (1.0 - gamma) + (1.0 - etaG[k] ** 2) * xiG[k];
      const a = Math.max(
        scale * (gamma * cos2 + 2.0 * etaG[k] * root * cos * sin + along * sin2),
        0.0,
      );
      const g = sourceNorm * targetNorm * (gamma * cos + etaG[k] * root * sin);
      let inner = 0.0;
      for (let j = 0; j < nNoise; j++) {
        const c = solveScale(a, b[j], scale, depth);
        inner += (c ** 2 * a - 2.0 * c * g) * wNoise[j];
      }
      outer += inner * wGeo[k];
    }
    total += wGamma[ig] * outer;
  }
  return total;
}

// ------------------------------------------------------------------------------------------
// fine-tuning

/** T_ft = (1-alpha)_+ (2 c |beta_s||beta_t| cos(theta) - c^2 |beta_s|^2), c = 1 for the paper's
 * endpoint; -E[c^2 a - 2 c g] for the corrected endpoint at finite D. */
function finetuneGain(alpha, theta, sigma, variant, sourceNorm, targetNorm, depth, dim) {
  if (variant === "exact" && dim !== null) {
    const n = sampleCount(alpha, dim);
    if (!(n < dim)) return 0.0;
    return 0.0 - finetuneCoupledTerm(n, dim, theta, sigma, sourceNorm, targetNorm, depth);
  }
  const overlap = sourceNorm * targetNorm * Math.cos(theta);
  const fraction = unexplainedFraction(alpha);
  if (variant === "paper") return fraction > 0.0 ? fraction * (2.0 * overlap - sourceNorm ** 2) : 0.0;
  if (!(fraction > 0.0)) return 0.0 * overlap - -0.0;
  const c = scaleAt(alpha, sigma, sourceNorm, targetNorm, depth, null);
  return 2.0 * fraction * c * overlap - fraction * (c * sourceNorm) ** 2;
}

/**
 * Fine-tuning, Theorem 3.9, eq. (16). variant "paper": the endpoint X^+ y + (I-P) beta_s,
 * (1-alpha)|beta_s - beta_t|^2 + sigma^2 alpha/(1-alpha) below 1 and the scratch error above;
 * "exact": the corrected endpoint X^+ y + c (I-P) beta_s (docs/theory.md, Fine-tuning), c at its
 * typical value in the limit and averaged over its law at finite D (five-variable quadrature).
 */
export function finetuneError(alpha, theta, sigma, options = {}) {
  alphaOf(alpha);
  thetaOf(theta);
  sigmaOf(sigma);
  const variant = choice("variant", options.variant ?? "paper", FINETUNE_VARIANTS);
  const { sourceNorm, targetNorm, depth, dim } = common(options);
  const scratch = unexplainedFraction(alpha) * targetNorm ** 2 + noiseError(alpha, sigma, dim);
  if (scratch === Infinity) return scratch;
  return scratch - finetuneGain(alpha, theta, sigma, variant, sourceNorm, targetNorm, depth, dim);
}

// ------------------------------------------------------------------------------------------
// transferability

function methodOptions(method, options) {
  choice("method", method, METHODS);
  const o = options || {};
  const lam = o.lam ?? null;
  if (lam !== null && method !== "ridge") {
    throw new RangeError(`lam applies to method 'ridge' only; got method '${method}'`);
  }
  if (lam === null && method === "ridge") {
    throw new RangeError("lam is required for method 'ridge' (a finite number in [0, inf))");
  }
  if (lam !== null) lamOf(lam);
  const variant = o.variant ?? null;
  if (variant !== null && method !== "finetune") {
    throw new RangeError(`variant applies to method 'finetune' only; got method '${method}'`);
  }
  return {
    lam,
    variant: method === "finetune" ? choice("variant", variant ?? "paper", FINETUNE_VARIANTS) : null,
    ...common(o),
  };
}

/**
 * Transferability T = E[R_scratch] - E[R_transfer], eq. (7), of method "linear" (eq. 13),
 * "ridge" (options.lam required) or "finetune" (eq. 17; options.variant "paper" or "exact").
 * options: lam, variant, dim (finite-size forms at D = dim), sourceNorm, targetNorm, depth.
 */
export function transferability(method, alpha, theta, sigma, options = {}) {
  const o = methodOptions(method, options);
  alphaOf(alpha);
  thetaOf(theta);
  sigmaOf(sigma);
  if (method === "finetune") {
    return finetuneGain(alpha, theta, sigma, o.variant, o.sourceNorm, o.targetNorm, o.depth, o.dim);
  }
  const scratch = unexplainedFraction(alpha) * o.targetNorm ** 2 + noiseError(alpha, sigma, o.dim);
  return scratch - transferError(method, alpha, theta, sigma, o);
}

function transferError(method, alpha, theta, sigma, o) {
  if (method === "linear") {
    return linearFromParts(alpha, sigma, (o.targetNorm * Math.sin(theta)) ** 2, o.dim);
  }
  const lamEff = o.lam / o.sourceNorm ** ((2.0 * (o.depth - 1)) / o.depth);
  const par2 = (o.targetNorm * Math.cos(theta)) ** 2;
  const perp2 = (o.targetNorm * Math.sin(theta)) ** 2;
  return ridgeFromParts(alpha, sigma, lamEff, par2, perp2, o.dim, null);
}

/**
 * Both expected errors and T at one point: {scratch, transfer, transferability}. The transfer
 * error is the method's (linearTransferError, ridgeTransferError or finetuneError).
 */
export function errors(method, alpha, theta, sigma, options = {}) {
  const o = methodOptions(method, options);
  const scratch = scratchError(alpha, sigma, o);
  thetaOf(theta);
  if (method === "finetune") {
    // one gain (one quadrature at finite D for the corrected endpoint) for both numbers
    const gain = finetuneGain(alpha, theta, sigma, o.variant, o.sourceNorm, o.targetNorm, o.depth, o.dim);
    return { scratch, transfer: scratch === Infinity ? scratch : scratch - gain, transferability: gain };
  }
  const transfer = transferError(method, alpha, theta, sigma, o);
  return { scratch, transfer, transferability: scratch - transfer };
}

/**
 * T over a grid: a Float64Array with T(alphas[i], thetas[j]) at j * alphas.length + i (rows are
 * angles). The same values as transferability, with the alpha-only factors (scratch error, the
 * ridge moments, c) formed once per column. The corrected fine-tuning at finite D takes one
 * quadrature per cell (milliseconds each): evaluate it on small grids only.
 */
export function transferabilityGrid(method, alphas, thetas, sigma, options = {}) {
  const o = methodOptions(method, options);
  sigmaOf(sigma);
  const na = alphas.length;
  const nt = thetas.length;
  for (const a of alphas) alphaOf(a);
  for (const t of thetas) thetaOf(t);
  const out = new Float64Array(na * nt);
  const { sourceNorm: ns, targetNorm: nt2, depth, dim } = o;
  if (method === "finetune" && o.variant === "exact" && dim !== null) {
    for (let j = 0; j < nt; j++) {
      for (let i = 0; i < na; i++) {
        out[j * na + i] = finetuneGain(alphas[i], thetas[j], sigma, "exact", ns, nt2, depth, dim);
      }
    }
    return out;
  }
  const scratch = new Float64Array(na);
  for (let i = 0; i < na; i++) {
    scratch[i] = unexplainedFraction(alphas[i]) * nt2 ** 2 + noiseError(alphas[i], sigma, dim);
  }
  if (method === "finetune") {
    const fraction = alphas.map(unexplainedFraction);
    const c = alphas.map((a) => (o.variant === "exact" ? scaleAt(a, sigma, ns, nt2, depth, null) : 1.0));
    for (let j = 0; j < nt; j++) {
      const overlap = ns * nt2 * Math.cos(thetas[j]);
      const row = j * na;
      for (let i = 0; i < na; i++) {
        const f = fraction[i];
        if (o.variant === "paper") out[row + i] = f > 0.0 ? f * (2.0 * overlap - ns ** 2) : 0.0;
        else if (!(f > 0.0)) out[row + i] = 0.0 * overlap - -0.0;
        else out[row + i] = 2.0 * f * c[i] * overlap - f * (c[i] * ns) ** 2;
      }
    }
    return out;
  }
  const lamEff = method === "ridge" ? o.lam / ns ** ((2.0 * (depth - 1)) / depth) : 0.0;
  const moments = method === "ridge" ? Array.from(alphas, (a) => ridgeMomentsAt(a, lamEff, dim)) : null;
  for (let j = 0; j < nt; j++) {
    const par2 = (nt2 * Math.cos(thetas[j])) ** 2;
    const perp2 = (nt2 * Math.sin(thetas[j])) ** 2;
    const row = j * na;
    for (let i = 0; i < na; i++) {
      const transfer =
        method === "linear"
          ? linearFromParts(alphas[i], sigma, perp2, dim)
          : ridgeFromParts(alphas[i], sigma, lamEff, par2, perp2, dim, moments[i]);
      out[row + i] = scratch[i] - transfer;
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// phase boundaries in the limit (docs/theory.md, Negative-transfer regions)

/**
 * Linear transfer (limit) is negative for alpha in (alphaLower, alphaUpper) below 1,
 * alpha_pm = [(1 + cos^2 - s^2) pm sqrt((1 + cos^2 - s^2)^2 - 4 cos^2)] / 2 with s = sigma/|beta_t|
 * (NaN when empty), and for alpha > alphaThreshold = 1 + s^2/sin^2(theta). finetuneAnglePaper:
 * the paper endpoint's break-even angle arccos(1/(2|beta_t|)) (pi/3 with unit norms).
 */
export function negativeTransferRegions(theta, sigma, options = {}) {
  thetaOf(theta);
  sigmaOf(sigma);
  const targetNorm = normOf(options.targetNorm ?? 1.0, "targetNorm");
  const s = sigma / targetNorm;
  const cos2 = Math.cos(theta) ** 2;
  const perp2 = Math.sin(theta) ** 2;
  const mid = 1.0 + cos2 - s ** 2;
  const disc = mid ** 2 - 4.0 * cos2;
  const open = 1.0 - Math.sqrt(cos2) > s && disc > 0.0;
  const root = Math.sqrt(open ? disc : 0.0);
  return {
    alphaLower: open ? (mid - root) / 2.0 : NaN,
    alphaUpper: open ? (mid + root) / 2.0 : NaN,
    alphaThreshold: perp2 > 0.0 ? 1.0 + s ** 2 / perp2 : Infinity,
    finetuneAnglePaper: Math.acos(Math.min(Math.max(0.5 / targetNorm, -1.0), 1.0)),
  };
}

/**
 * Fine-tuning (limit) transfers positively iff cos(theta) > c |beta_s| / (2 |beta_t|): the angle
 * arccos(c |beta_s| / (2 |beta_t|)), c = 1 (paper) or the corrected c; NaN for alpha >= 1.
 */
export function finetuneBreakEvenAngle(alpha, sigma, options = {}) {
  alphaOf(alpha);
  sigmaOf(sigma);
  const variant = choice("variant", options.variant ?? "paper", FINETUNE_VARIANTS);
  const sourceNorm = normOf(options.sourceNorm ?? 1.0, "sourceNorm");
  const targetNorm = normOf(options.targetNorm ?? 1.0, "targetNorm");
  const depth = depthOf(options.depth ?? 2);
  const c =
    variant === "paper"
      ? alpha < 1.0
        ? 1.0
        : NaN
      : scaleAt(alpha, sigma, sourceNorm, targetNorm, depth, null);
  const ratio = (c * sourceNorm) / (2.0 * targetNorm);
  return Math.acos(Math.min(Math.max(ratio, -1.0), 1.0));
}
