//! Winograd minimal filtering for the 3×3, stride-1, padding-1 convolutions of an inference
//! network on AVX2 hosts (Lavin & Gray 2016, F(m×m, 3×3)), where oneDNN 2.6 has only direct
//! kernels (its Winograd is AVX-512 only). Safe Rust: the weight, input and output transforms;
//! the α² matrix products per chunk of tiles are handed to a caller's GEMM (oneDNN's `sgemm`),
//! and the chunks to a caller's parallel loop (the OpenMP team oneDNN's primitives run on).
//!
//! Buffer layouts (all row-major `f32`):
//! * activations `nChw8c` (what oneDNN's AVX2 kernels choose): `[n][c/8][h][w][8]`, channels a
//!   multiple of 8;
//! * transformed input `V[ξ][t][c]` and products `M[ξ][t][o]` of one chunk of tiles, `ξ < α²` the
//!   position in the α×α transformed tile, `t` the chunk's tile (rows of tiles, then columns);
//! * transformed weights `U[ξ][c][o]`, so that `M[ξ] = V[ξ] · U[ξ]`.
//!
//! Why it is faster here: F(4×4, 3×3) does 4× fewer multiply-adds than a direct convolution,
//! F(2×2, 3×3) 2.25×; the transforms are a few additions per value. Measured on a 2-core AVX2
//! EPYC, 2 threads, one layer alone (docs/engines.md, "Winograd convolutions", medians): 64→64
//! at 56² 1.3–1.7 ms with F(4×4) against 2.0–2.4 ms for oneDNN's direct kernel (through PyTorch)
//! and 1.8 ms for onnxruntime's.

mod transforms;

use pulp::Arch;
use std::sync::Mutex;
use transforms::{F2, F4, InputTiles, OutputTiles, TileSize, transform_weights};

/// The geometry of one convolution: batch, channels in and out, and the (same) input and
/// output height and width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Geometry {
    /// Tiles per image row and column for output tiles of side `m`.
    fn tiles(self, m: usize) -> [usize; 2] {
        [self.height.div_ceil(m), self.width.div_ceil(m)]
    }
}

/// The tile size a layer runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tile {
    /// F(2×2, 3×3).
    F2,
    /// F(4×4, 3×3).
    F4,
}

/// Fewest tiles of one image worth a Winograd layer: below this the α² products are too small
/// for each to repack its `U[ξ]` (C·O values) cheaply. Measured (2-core AVX2, 2 threads,
/// medians): 256→256 at 14² took 3.0–3.4 ms with F(4×4) (16 tiles) against 0.9–1.1 ms with
/// F(2×2) (49 tiles), and 512→512 at 7² 5.6–6.5 ms with F(2×2) (16 tiles) against 3.0 ms for
/// oneDNN's direct kernel (through PyTorch).
const MIN_TILES: usize = 24;

/// Fewest input and output channels worth a Winograd layer (the measured range; the compact
/// network's 16- and 32-channel layers stay direct).
const MIN_CHANNELS: usize = 64;

impl Tile {
    /// The tile size for a 3×3 stride-1 padding-1 layer of `geometry`, the largest with at
    /// least [`MIN_TILES`] tiles per image; `None` where the direct convolution is faster or
    /// the channels are not whole `nChw8c` blocks.
    pub(crate) fn for_layer(geometry: Geometry) -> Option<Self> {
        let Geometry { in_channels: c, out_channels: o, height: h, width: w, .. } = geometry;
        if c % 8 != 0 || o % 8 != 0 || c < MIN_CHANNELS || o < MIN_CHANNELS {
            return None;
        }
        let tiles = |m: usize| h.div_ceil(m) * w.div_ceil(m);
        [(Self::F4, 4), (Self::F2, 2)].into_iter().find(|&(_, m)| tiles(m) >= MIN_TILES).map(|(tile, _)| tile)
    }

    /// How [`crate::Network::describe`] names it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::F2 => "winograd F(2x2,3x3) (bottlenet, AVX2) + sgemm",
            Self::F4 => "winograd F(4x4,3x3) (bottlenet, AVX2) + sgemm",
        }
    }
}

/// One planned Winograd layer: `relu?(conv3×3(x) + bias)`, weights transformed once.
#[derive(Debug)]
pub(crate) struct WinogradConv {
    geometry: Geometry,
    tile: Tile,
    /// `U[ξ][c][o]`.
    u: Vec<f32>,
    bias: Vec<f32>,
    relu: bool,
}

impl WinogradConv {
    /// `weight` is OIHW 3×3 (`[o][c][3][3]`), `bias` `[o]`; the caller checked the shapes.
    pub(crate) fn new(geometry: Geometry, tile: Tile, weight: &[f32], bias: &[f32], relu: bool) -> Self {
        let u = match tile {
            Tile::F2 => transform_weights::<F2, 4, 2>(geometry, weight),
            Tile::F4 => transform_weights::<F4, 6, 4>(geometry, weight),
        };
        Self { geometry, tile, u, bias: bias.to_vec(), relu }
    }

    /// Values in the source and in the destination (`nChw8c`, no padding).
    pub(crate) fn lens(&self) -> [usize; 2] {
        let Geometry { batch, in_channels, out_channels, height, width } = self.geometry;
        [batch * in_channels * height * width, batch * out_channels * height * width]
    }

    /// Runs the layer: one part per scratch buffer, the parts handed to `parallel`.
    pub(crate) fn run(&self, source: &[f32], destination: &mut [f32], gemm: Gemm<'_>, parallel: ParallelFor<'_>, scratch: &mut [Scratch]) {
        match self.tile {
            Tile::F2 => convolve::<F2, 4, 2>(self.geometry, source, &self.u, &self.bias, self.relu, destination, gemm, parallel, scratch),
            Tile::F4 => convolve::<F4, 6, 4>(self.geometry, source, &self.u, &self.bias, self.relu, destination, gemm, parallel, scratch),
        }
    }
}

/// A row-major single-threaded `C[m×n] = A[m×k] · B[k×n]` (lda = k, ldb = n, ldc = n).
pub(crate) type Gemm<'a> = &'a (dyn Fn(usize, usize, usize, &[f32], &[f32], &mut [f32]) + Sync);

/// `parallel(n, f)` calls `f(k)` once for every `k < n`, possibly on several threads at once,
/// and returns when all have returned.
pub(crate) type ParallelFor<'a> = &'a (dyn Fn(usize, &(dyn Fn(usize) + Sync)) + Sync);

/// The convolution `destination = relu?(conv3×3(source) + bias)` on `nChw8c` buffers with
/// transformed weights `u` (see [`transform_weights`]). The tiles are cut into chunks of whole
/// tile rows of about [`CHUNK_TILES`] tiles, and the chunks into one contiguous part per scratch
/// buffer; the parts run through `parallel`, in one of two orders:
///
/// * **fused**, where the transformed input outweighs the weights (more tiles than output
///   channels: 64→64 at 56²): each chunk is transformed, multiplied (`gemm`, α² products) and
///   transformed back while its buffers are in cache;
/// * **staged**, where the weights outweigh it (128→128 at 28², 256→256 at 14²): every tile's
///   input is transformed, then the α² products are shared out by `ξ`, so that each `U[ξ]` is
///   read once and not once per chunk, then every tile is transformed back. Measured in
///   ResNet-50 (2-core AVX2): reading all of `U` per chunk made the 14² layers memory-bound.
#[allow(clippy::too_many_arguments)]
fn convolve<T: TileSize<A, M>, const A: usize, const M: usize>(geometry: Geometry, source: &[f32], u: &[f32], bias: &[f32], relu: bool, destination: &mut [f32], gemm: Gemm<'_>, parallel: ParallelFor<'_>, scratch: &mut [Scratch]) {
    let Geometry { batch, width: w, in_channels: c, out_channels: o, .. } = geometry;
    let [ty, tx] = geometry.tiles(M);
    let all_tiles = batch * ty * tx;
    let chunks = chunks_of::<M>(geometry, destination);
    let parts = scratch.len().clamp(1, chunks.len().max(1));
    let most_tiles = chunks.iter().map(|chunk| chunk.tiles(w, tx)).max().unwrap_or(0);
    let input = |planes: &mut [&mut [f32]], chunk: &Chunk<'_>| {
        Arch::new().dispatch(InputTiles::<T, A, M> { geometry, source, planes, tiles: chunk.tiles(w, tx), first_tile: chunk.first_tile, _tile: std::marker::PhantomData });
    };
    let output = |m: &[f32], plane_tiles: usize, first: usize, chunk: &mut Chunk<'_>| {
        let rows = chunk.rows(w);
        Arch::new().dispatch(OutputTiles::<T, A, M> { geometry, m, plane_tiles, first, tiles: chunk.tiles(w, tx), bias, relu, blocks: &mut chunk.blocks, rows, _tile: std::marker::PhantomData });
    };
    if o <= all_tiles {
        // Fused: part k's chunks and scratch buffer k.
        let work: Vec<Mutex<(Vec<Chunk<'_>>, &mut Scratch)>> = split_into(chunks, parts).into_iter().zip(scratch.iter_mut()).map(Mutex::new).collect();
        parallel(work.len(), &|k| {
            let mut guard = work[k].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let (part, buffers) = &mut *guard;
            for chunk in part.iter_mut() {
                let tiles = chunk.tiles(w, tx);
                let (v, m) = buffers.sized(A * A * most_tiles * c, A * A * most_tiles * o);
                let mut planes: Vec<&mut [f32]> = v[..A * A * tiles * c].chunks_exact_mut(tiles * c).collect();
                input(&mut planes, chunk);
                for xi in 0..A * A {
                    gemm(tiles, o, c, &v[xi * tiles * c..][..tiles * c], &u[xi * c * o..][..c * o], &mut m[xi * tiles * o..][..tiles * o]);
                }
                output(m, tiles, 0, chunk);
            }
        });
        return;
    }
    // Staged: the whole V and M in scratch buffer 0.
    let Some(buffers) = scratch.first_mut() else { return };
    let (v, m) = buffers.sized(A * A * all_tiles * c, A * A * all_tiles * o);
    {
        // Each chunk's rows of every plane of V.
        let mut rows: Vec<Vec<&mut [f32]>> = chunks.iter().map(|_| Vec::with_capacity(A * A)).collect();
        for plane in v.chunks_exact_mut(all_tiles * c) {
            let mut rest = plane;
            for (k, chunk) in chunks.iter().enumerate() {
                let (these, later) = rest.split_at_mut(chunk.tiles(w, tx) * c);
                rows[k].push(these);
                rest = later;
            }
        }
        let work: Vec<Mutex<Vec<(&Chunk<'_>, Vec<&mut [f32]>)>>> = split_into(chunks.iter().zip(rows).collect(), parts).into_iter().map(Mutex::new).collect();
        parallel(work.len(), &|k| {
            for (chunk, planes) in work[k].lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter_mut() {
                input(planes, chunk);
            }
        });
    }
    {
        let v: &[f32] = v;
        let products: Vec<(usize, &mut [f32])> = m.chunks_exact_mut(all_tiles * o).enumerate().collect();
        let work: Vec<Mutex<Vec<(usize, &mut [f32])>>> = split_into(products, parts).into_iter().map(Mutex::new).collect();
        parallel(work.len(), &|k| {
            for (xi, product) in work[k].lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter_mut() {
                gemm(all_tiles, o, c, &v[*xi * all_tiles * c..][..all_tiles * c], &u[*xi * c * o..][..c * o], product);
            }
        });
    }
    let m: &[f32] = m;
    let work: Vec<Mutex<Vec<Chunk<'_>>>> = split_into(chunks, parts).into_iter().map(Mutex::new).collect();
    parallel(work.len(), &|k| {
        for chunk in work[k].lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter_mut() {
            let first = chunk.first_tile;
            output(m, all_tiles, first, chunk);
        }
    });
}

/// Whole rows of tiles of one image, and the image rows of the destination they make.
struct Chunk<'a> {
    /// The chunk's first tile among all tiles (images, then rows of tiles, then columns).
    first_tile: usize,
    /// Per output block of 8 channels, the chunk's image rows of it.
    blocks: Vec<&'a mut [f32]>,
    /// `M`: the side of an output tile.
    tile_side: usize,
}

impl Chunk<'_> {
    fn rows(&self, width: usize) -> usize {
        self.blocks[0].len() / (width * 8)
    }

    /// Tiles in the chunk, for `tiles_across` per row of tiles (`M` from the rows' count).
    fn tiles(&self, width: usize, tiles_across: usize) -> usize {
        self.rows(width).div_ceil(self.tile_side) * tiles_across
    }
}

/// `destination` cut into [`Chunk`]s of about [`CHUNK_TILES`] tiles of side `M`.
fn chunks_of<const M: usize>(geometry: Geometry, destination: &mut [f32]) -> Vec<Chunk<'_>> {
    let Geometry { batch, height: h, width: w, out_channels: o, .. } = geometry;
    let [ty, tx] = geometry.tiles(M);
    let rows_per_chunk = (CHUNK_TILES / tx).clamp(1, ty);
    let ranges: Vec<[usize; 2]> = (0..ty).step_by(rows_per_chunk).map(|r| [r, (r + rows_per_chunk).min(ty)]).collect();
    let mut chunks: Vec<Chunk<'_>> = Vec::new();
    for (n, image) in destination[..batch * o * h * w].chunks_exact_mut(o * h * w).enumerate() {
        let first = chunks.len();
        chunks.extend(ranges.iter().map(|&[r0, _]| Chunk { first_tile: (n * ty + r0) * tx, blocks: Vec::with_capacity(o / 8), tile_side: M }));
        for plane in image.chunks_exact_mut(h * w * 8) {
            let mut rest = plane;
            for (k, [r0, r1]) in ranges.iter().enumerate() {
                let (these, later) = rest.split_at_mut(((r1 * M).min(h) - r0 * M) * w * 8);
                chunks[first + k].blocks.push(these);
                rest = later;
            }
        }
    }
    chunks
}

/// `items` in `parts` contiguous runs (fewer where there are fewer items).
fn split_into<W>(items: Vec<W>, parts: usize) -> Vec<Vec<W>> {
    let per_part = items.len().div_ceil(parts.max(1)).max(1);
    let mut runs = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        runs.push(items.by_ref().take(per_part).collect());
    }
    runs
}

/// One thread's transformed input and products, kept between calls.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
}

impl Scratch {
    fn sized(&mut self, v: usize, m: usize) -> (&mut [f32], &mut [f32]) {
        if self.v.len() < v {
            self.v.resize(v, 0.);
        }
        if self.m.len() < m {
            self.m.resize(m, 0.);
        }
        (&mut self.v[..v], &mut self.m[..m])
    }
}

/// Tiles per chunk (module docs of [`convolve`]): small enough that a chunk's transformed input
/// and products stay in a core's cache, large enough for efficient matrix products.
const CHUNK_TILES: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / (1 << 24) as f32 - 0.5).collect()
    }

    /// NCHW index of `nChw8c` element `i`, for `[n][c/8][h][w][8]`.
    fn blocked_to_nchw(i: usize, [c, h, w]: [usize; 3]) -> usize {
        let lane = i % 8;
        let rest = i / 8;
        let (x, rest) = (rest % w, rest / w);
        let (y, rest) = (rest % h, rest / h);
        let (cb, n) = (rest % (c / 8), rest / (c / 8));
        ((n * c + cb * 8 + lane) * h + y) * w + x
    }

    /// The definition in f64 on NCHW buffers.
    fn direct(g: Geometry, x: &[f32], weight: &[f32], bias: &[f32], relu: bool) -> Vec<f64> {
        let Geometry { batch, in_channels: c, out_channels: o, height: h, width: w } = g;
        let mut out = vec![0f64; batch * o * h * w];
        for n in 0..batch {
            for oc in 0..o {
                for y in 0..h {
                    for xx in 0..w {
                        let mut acc = f64::from(bias[oc]);
                        for ic in 0..c {
                            for i in 0..3 {
                                for j in 0..3 {
                                    let (sy, sx) = ((y + i).wrapping_sub(1), (xx + j).wrapping_sub(1));
                                    if sy < h && sx < w {
                                        acc += f64::from(x[((n * c + ic) * h + sy) * w + sx]) * f64::from(weight[((oc * c + ic) * 3 + i) * 3 + j]);
                                    }
                                }
                            }
                        }
                        out[((n * o + oc) * h + y) * w + xx] = if relu { acc.max(0.) } else { acc };
                    }
                }
            }
        }
        out
    }

    /// `f` for every part on threads of its own (scoped), as the OpenMP team would.
    fn threads(n: usize, f: &(dyn Fn(usize) + Sync)) {
        std::thread::scope(|scope| {
            for k in 0..n {
                scope.spawn(move || f(k));
            }
        });
    }

    fn naive_gemm(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|q| a[i * k + q] * b[q * n + j]).sum();
            }
        }
    }

    /// Every tile size, both orders (fused and staged), ragged edges (sizes not multiples of the
    /// tile), several images, several chunks and several scratch buffers, against the f64
    /// definition.
    #[test]
    fn winograd_matches_the_direct_definition() {
        for (tile, batch, [c, o], [h, w], relu, parts) in [
            (Tile::F2, 2, [16, 24], [7, 9], false, 1),
            (Tile::F2, 1, [8, 8], [14, 14], true, 2),
            (Tile::F4, 2, [16, 8], [13, 10], true, 2),
            (Tile::F4, 1, [24, 16], [56, 30], false, 1),
            // More output channels than tiles: the staged order.
            (Tile::F4, 3, [8, 16], [5, 3], true, 3),
            (Tile::F2, 1, [16, 64], [9, 11], false, 2),
        ] {
            let g = Geometry { batch, in_channels: c, out_channels: o, height: h, width: w };
            let x = values(batch * c * h * w, 1);
            let weight: Vec<f32> = values(o * c * 9, 2).iter().map(|v| v * 0.3).collect();
            let bias = values(o, 3);
            let blocked: Vec<f32> = (0..x.len()).map(|i| x[blocked_to_nchw(i, [c, h, w])]).collect();
            let layer = WinogradConv::new(g, tile, &weight, &bias, relu);
            assert_eq!(layer.lens(), [x.len(), batch * o * h * w]);
            let mut out = vec![f32::NAN; batch * o * h * w];
            let mut scratch: Vec<Scratch> = (0..parts).map(|_| Scratch::default()).collect();
            // Twice: the second run reuses the scratch buffers.
            for _ in 0..2 {
                layer.run(&blocked, &mut out, &naive_gemm, &threads, &mut scratch);
                let want = direct(g, &x, &weight, &bias, relu);
                let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
                for (i, got) in out.iter().enumerate() {
                    let expected = want[blocked_to_nchw(i, [o, h, w])];
                    assert!((f64::from(*got) - expected).abs() <= 1e-5 * scale.max(1.), "{tile:?} {g:?}: value {i} is {got}, expected {expected}");
                }
            }
        }
    }

    #[test]
    fn tile_sizes_follow_the_measured_rule() {
        let layer = |c, hw| Geometry { batch: 1, in_channels: c, out_channels: c, height: hw, width: hw };
        // ResNet-50's stride-1 3×3 layers.
        assert_eq!(Tile::for_layer(layer(64, 56)), Some(Tile::F4));
        assert_eq!(Tile::for_layer(layer(128, 28)), Some(Tile::F4));
        assert_eq!(Tile::for_layer(layer(256, 14)), Some(Tile::F2));
        assert_eq!(Tile::for_layer(layer(512, 7)), None);
        // Too few channels, or not whole blocks of 8.
        assert_eq!(Tile::for_layer(layer(16, 28)), None);
        assert_eq!(Tile::for_layer(layer(68, 56)), None);
    }
}
