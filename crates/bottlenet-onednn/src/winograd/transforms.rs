//! The Winograd transforms of [`super`]: the tile sizes (`Bᵀ`, `G`, `Aᵀ` of Lavin & Gray's
//! F(2×2, 3×3) and F(4×4, 3×3)), the weight transform, and the input and output transforms of
//! a chunk of tiles, each a `pulp` [`WithSimd`] so that pulp compiles it for AVX2 (eight lanes,
//! one `nChw8c` block, per register).

use super::Geometry;
use pulp::{Simd, WithSimd};

/// Eight channels of one pixel: one `nChw8c` block, one AVX2 register.
type Lanes = [f32; 8];

/// `a·x + b·y` lane by lane (the transforms' only operation).
#[inline(always)]
fn mix(a: f32, x: &Lanes, b: f32, y: &Lanes) -> Lanes {
    let mut out = [0f32; 8];
    for l in 0..8 {
        out[l] = a * x[l] + b * y[l];
    }
    out
}

#[inline(always)]
fn plus(x: &Lanes, y: &Lanes) -> Lanes {
    mix(1., x, 1., y)
}

#[inline(always)]
fn minus(x: &Lanes, y: &Lanes) -> Lanes {
    mix(1., x, -1., y)
}

/// One tile size: `M` outputs per side from `A = M + 2` inputs per side.
pub(crate) trait TileSize<const A: usize, const M: usize>: Copy + Send + Sync {
    /// `G` (α×3): `U = G g Gᵀ` for a 3×3 kernel `g`.
    const G: [[f64; 3]; A];
    /// `Bᵀ d` for one line `d` of an input tile.
    fn input_line(d: &[Lanes; A]) -> [Lanes; A];
    /// `Aᵀ m` for one line `m` of a product tile.
    fn output_line(m: &[Lanes; A]) -> [Lanes; M];
}

/// F(2×2, 3×3): 4×4 input tiles, 16 products, 2.25× fewer multiply-adds than direct.
#[derive(Clone, Copy, Debug)]
pub(crate) struct F2;
/// F(4×4, 3×3): 6×6 input tiles, 36 products, 4× fewer multiply-adds than direct.
#[derive(Clone, Copy, Debug)]
pub(crate) struct F4;

impl TileSize<4, 2> for F2 {
    const G: [[f64; 3]; 4] = [[1., 0., 0.], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0., 0., 1.]];
    #[inline(always)]
    fn input_line(d: &[Lanes; 4]) -> [Lanes; 4] {
        [minus(&d[0], &d[2]), plus(&d[1], &d[2]), minus(&d[2], &d[1]), minus(&d[1], &d[3])]
    }
    #[inline(always)]
    fn output_line(m: &[Lanes; 4]) -> [Lanes; 2] {
        [plus(&plus(&m[0], &m[1]), &m[2]), minus(&minus(&m[1], &m[2]), &m[3])]
    }
}

impl TileSize<6, 4> for F4 {
    const G: [[f64; 3]; 6] = [
        [1. / 4., 0., 0.],
        [-1. / 6., -1. / 6., -1. / 6.],
        [-1. / 6., 1. / 6., -1. / 6.],
        [1. / 24., 1. / 12., 1. / 6.],
        [1. / 24., -1. / 12., 1. / 6.],
        [0., 0., 1.],
    ];
    #[inline(always)]
    fn input_line(d: &[Lanes; 6]) -> [Lanes; 6] {
        // Lavin & Gray's Bᵀ, rows shared in pairs: (d4 − 4·d2) ± (d3 − 4·d1)… as in NNPACK.
        let d4_4d2 = mix(1., &d[4], -4., &d[2]);
        let d3_4d1 = mix(1., &d[3], -4., &d[1]);
        let d4_d2 = minus(&d[4], &d[2]);
        let d3_d1 = mix(2., &d[3], -2., &d[1]);
        [
            mix(1., &mix(4., &d[0], -5., &d[2]), 1., &d[4]),
            plus(&d4_4d2, &d3_4d1),
            minus(&d4_4d2, &d3_4d1),
            plus(&d4_d2, &d3_d1),
            minus(&d4_d2, &d3_d1),
            mix(1., &mix(4., &d[1], -5., &d[3]), 1., &d[5]),
        ]
    }
    #[inline(always)]
    fn output_line(m: &[Lanes; 6]) -> [Lanes; 4] {
        let (s12, d12) = (plus(&m[1], &m[2]), minus(&m[1], &m[2]));
        let (s34, d34) = (plus(&m[3], &m[4]), minus(&m[3], &m[4]));
        [
            plus(&plus(&m[0], &s12), &s34),
            mix(1., &d12, 2., &d34),
            mix(1., &s12, 4., &s34),
            plus(&mix(1., &d12, 8., &d34), &m[5]),
        ]
    }
}

/// `U[ξ][c][o] = (G g Gᵀ)[ξ]` for OIHW 3×3 `weight`, computed in f64.
pub(super) fn transform_weights<T: TileSize<A, M>, const A: usize, const M: usize>(geometry: Geometry, weight: &[f32]) -> Vec<f32> {
    let (c_count, o_count) = (geometry.in_channels, geometry.out_channels);
    let mut u = vec![0f32; A * A * c_count * o_count];
    for o in 0..o_count {
        for c in 0..c_count {
            let g = &weight[(o * c_count + c) * 9..][..9];
            // G g: A×3.
            let gg: [[f64; 3]; A] = std::array::from_fn(|r| std::array::from_fn(|j| (0..3).map(|q| T::G[r][q] * f64::from(g[q * 3 + j])).sum()));
            for r in 0..A {
                for s in 0..A {
                    let value: f64 = (0..3).map(|q| gg[r][q] * T::G[s][q]).sum();
                    u[((r * A + s) * c_count + c) * o_count + o] = value as f32;
                }
            }
        }
    }
    u
}

#[inline(always)]
fn load(values: &[f32], at: usize) -> Lanes {
    let mut out = [0f32; 8];
    out.copy_from_slice(&values[at..at + 8]);
    out
}

/// `planes[ξ][local tile][c] = (Bᵀ d B)[ξ]` for `tiles` tiles from `first_tile` on.
pub(super) struct InputTiles<'a, 'b, T, const A: usize, const M: usize> {
    pub(super) geometry: Geometry,
    pub(super) source: &'a [f32],
    pub(super) planes: &'a mut [&'b mut [f32]],
    pub(super) tiles: usize,
    pub(super) first_tile: usize,
    pub(super) _tile: std::marker::PhantomData<T>,
}

impl<T: TileSize<A, M>, const A: usize, const M: usize> WithSimd for InputTiles<'_, '_, T, A, M> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let Geometry { height: h, width: w, in_channels: c, .. } = self.geometry;
        let [ty, tx] = self.geometry.tiles(M);
        for local in 0..self.tiles {
            let t = self.first_tile + local;
            let (n, rest) = (t / (ty * tx), t % (ty * tx));
            let (y0, x0) = ((rest / tx) * M, (rest % tx) * M);
            for cb in 0..c / 8 {
                let plane = &self.source[(n * (c / 8) + cb) * h * w * 8..][..h * w * 8];
                let mut d = [[[0f32; 8]; A]; A];
                for (i, line) in d.iter_mut().enumerate() {
                    let Some(y) = (y0 + i).checked_sub(1).filter(|&y| y < h) else { continue };
                    for (j, pixel) in line.iter_mut().enumerate() {
                        if let Some(x) = (x0 + j).checked_sub(1).filter(|&x| x < w) {
                            *pixel = load(plane, (y * w + x) * 8);
                        }
                    }
                }
                // Along each line, then along each column.
                let mut lines = [[[0f32; 8]; A]; A];
                for i in 0..A {
                    lines[i] = T::input_line(&d[i]);
                }
                for s in 0..A {
                    let mut column = [[0f32; 8]; A];
                    for i in 0..A {
                        column[i] = lines[i][s];
                    }
                    for (r, value) in T::input_line(&column).iter().enumerate() {
                        self.planes[r * A + s][local * c + cb * 8..][..8].copy_from_slice(value);
                    }
                }
            }
        }
    }
}

/// `y = Aᵀ m A + bias` (then ReLU) for a chunk's tiles, into each output block's rows.
pub(super) struct OutputTiles<'a, 'b, T, const A: usize, const M: usize> {
    pub(super) geometry: Geometry,
    /// Products `m[ξ][tile][o]`, `plane_tiles` tiles per `ξ`, the chunk's from `first` on.
    pub(super) m: &'a [f32],
    pub(super) plane_tiles: usize,
    pub(super) first: usize,
    pub(super) tiles: usize,
    pub(super) bias: &'a [f32],
    pub(super) relu: bool,
    /// Per output block, its image rows from the chunk's first tile row on.
    pub(super) blocks: &'a mut [&'b mut [f32]],
    pub(super) rows: usize,
    pub(super) _tile: std::marker::PhantomData<T>,
}

impl<T: TileSize<A, M>, const A: usize, const M: usize> WithSimd for OutputTiles<'_, '_, T, A, M> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let Geometry { width: w, out_channels: o, .. } = self.geometry;
        let [_, tx] = self.geometry.tiles(M);
        for local in 0..self.tiles {
            let (local_row, tile_x) = (local / tx, local % tx);
            for (ob, block) in self.blocks.iter_mut().enumerate() {
                let bias = load(self.bias, ob * 8);
                let mut lines = [[[0f32; 8]; M]; A];
                for r in 0..A {
                    let mut product = [[0f32; 8]; A];
                    for s in 0..A {
                        product[s] = load(self.m, ((r * A + s) * self.plane_tiles + self.first + local) * o + ob * 8);
                    }
                    lines[r] = T::output_line(&product);
                }
                for s in 0..M {
                    let x = tile_x * M + s;
                    if x >= w {
                        break;
                    }
                    let mut column = [[0f32; 8]; A];
                    for r in 0..A {
                        column[r] = lines[r][s];
                    }
                    for (r, value) in T::output_line(&column).iter().enumerate() {
                        let y = local_row * M + r;
                        if y >= self.rows {
                            break;
                        }
                        let pixel = &mut block[(y * w + x) * 8..][..8];
                        for l in 0..8 {
                            let v = value[l] + bias[l];
                            pixel[l] = if self.relu { v.max(0.) } else { v };
                        }
                    }
                }
            }
        }
    }
}
