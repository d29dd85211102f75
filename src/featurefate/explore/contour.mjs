// The zero contour of a sampled field by marching squares, for the phase-diagram explorer.

/**
 * Segments of the level set {f = level} of a field sampled on a grid: `values[j * nx + i]` is
 * f at grid point (i, j). Returns a flat array [x0, y0, x1, y1, ...] in grid coordinates
 * (fractional i and j), two points per segment. Each cell's crossings are placed by linear
 * interpolation along its edges (at the midpoint of an edge with an infinite end); saddle cells
 * are resolved by the mean of their corners; cells with a NaN corner are skipped. +-Infinity
 * counts by its sign.
 */
export function contourSegments(values, nx, ny, level = 0.0) {
  const out = [];
  const cross = (va, vb) => {
    if (!Number.isFinite(va) || !Number.isFinite(vb)) return 0.5;
    return (level - va) / (vb - va);
  };
  for (let j = 0; j + 1 < ny; j++) {
    for (let i = 0; i + 1 < nx; i++) {
      // corners counter-clockwise from (i, j): a (i, j), b (i+1, j), c (i+1, j+1), d (i, j+1)
      const a = values[j * nx + i];
      const b = values[j * nx + i + 1];
      const c = values[(j + 1) * nx + i + 1];
      const d = values[(j + 1) * nx + i];
      if (Number.isNaN(a) || Number.isNaN(b) || Number.isNaN(c) || Number.isNaN(d)) continue;
      const index = (a > level ? 1 : 0) | (b > level ? 2 : 0) | (c > level ? 4 : 0) | (d > level ? 8 : 0);
      if (index === 0 || index === 15) continue;
      // edge crossing points: bottom (a-b), right (b-c), top (d-c), left (a-d)
      const bottom = () => [i + cross(a, b), j];
      const right = () => [i + 1, j + cross(b, c)];
      const top = () => [i + cross(d, c), j + 1];
      const left = () => [i, j + cross(a, d)];
      const pairs = [];
      switch (index) {
        case 1: case 14: pairs.push([left(), bottom()]); break;
        case 2: case 13: pairs.push([bottom(), right()]); break;
        case 3: case 12: pairs.push([left(), right()]); break;
        case 4: case 11: pairs.push([right(), top()]); break;
        case 6: case 9: pairs.push([bottom(), top()]); break;
        case 7: case 8: pairs.push([left(), top()]); break;
        case 5: case 10: {
          const finite = [a, b, c, d].every(Number.isFinite);
          const centre = finite ? (a + b + c + d) / 4.0 : (index === 5 ? a : b);
          // a and c above (5) or b and d above (10); the centre decides which pair is joined
          const joined = (centre > level) === (index === 5);
          if (joined) pairs.push([left(), top()], [bottom(), right()]);
          else pairs.push([left(), bottom()], [right(), top()]);
          break;
        }
        default: break;
      }
      for (const [p, q] of pairs) out.push(p[0], p[1], q[0], q[1]);
    }
  }
  return out;
}
