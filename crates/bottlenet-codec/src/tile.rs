//! Tiling of C feature channels into one grayscale image, paper §2.2.

use crate::tensor::Shape;

/// Tile layout: `across × down` tiles of `H×W` pixels, channel `c` at tile `(c mod across, c div across)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileGrid {
    pub across: usize,
    pub down: usize,
}

impl TileGrid {
    /// Paper §2.2: `2^ceil(½·log2 C)` tiles across and `2^floor(½·log2 C)` down.
    ///
    /// The paper's formula is exact for powers of two; for other C it can give fewer tiles than
    /// channels (C = 3 → 2×1), so log2 is taken of the next power of two, `k = ceil(log2 C)`:
    /// across = `2^ceil(k/2)`, down = `2^floor(k/2)`. Invariant: `across·down ≥ C`, and equals the
    /// paper's layout whenever C is a power of two.
    pub fn for_channels(channels: usize) -> Self {
        let k = channels.max(1).next_power_of_two().trailing_zeros() as usize;
        Self { across: 1 << k.div_ceil(2), down: 1 << (k / 2) }
    }

    /// Pixel width and height of the tiled image for `shape`.
    pub fn image_size(&self, shape: &Shape) -> (usize, usize) {
        (self.across * shape.width, self.down * shape.height)
    }
}

/// Lays the channels of `levels` (C×H×W, row-major) out as one image, row-major, unused tiles 0.
pub fn tile(levels: &[u8], shape: &Shape) -> Vec<u8> {
    debug_assert_eq!(levels.len(), shape.len());
    let grid = TileGrid::for_channels(shape.channels);
    let (image_width, image_height) = grid.image_size(shape);
    let mut image = vec![0u8; image_width * image_height];
    for (channel, plane) in levels.chunks_exact(shape.plane().max(1)).enumerate().take(shape.channels) {
        let (tile_x, tile_y) = (channel % grid.across, channel / grid.across);
        for (row, line) in plane.chunks_exact(shape.width).enumerate() {
            let start = (tile_y * shape.height + row) * image_width + tile_x * shape.width;
            image[start..start + shape.width].copy_from_slice(line);
        }
    }
    image
}

/// Inverse of [`tile`]: reads the C channels back out of the image (unused tiles ignored).
pub fn untile(image: &[u8], shape: &Shape) -> Vec<u8> {
    let grid = TileGrid::for_channels(shape.channels);
    let (image_width, _) = grid.image_size(shape);
    let mut levels = Vec::with_capacity(shape.len());
    for channel in 0..shape.channels {
        let (tile_x, tile_y) = (channel % grid.across, channel / grid.across);
        for row in 0..shape.height {
            let start = (tile_y * shape.height + row) * image_width + tile_x * shape.width;
            levels.extend_from_slice(&image[start..start + shape.width]);
        }
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_matches_paper_for_powers_of_two() {
        for (c, across, down) in [(1, 1, 1), (2, 2, 1), (4, 2, 2), (8, 4, 2), (16, 4, 4), (256, 16, 16), (512, 32, 16)] {
            assert_eq!(TileGrid::for_channels(c), TileGrid { across, down }, "C = {c}");
        }
    }

    #[test]
    fn grid_covers_every_channel() {
        for c in 1..=512 {
            let g = TileGrid::for_channels(c);
            assert!(g.across * g.down >= c && g.across * g.down < 2 * c.next_power_of_two().max(1), "C = {c}");
        }
    }

    #[test]
    fn unused_tiles_are_zero() {
        let shape = Shape::new(3, 2, 2);
        let image = tile(&[9; 12], &shape);
        assert_eq!(image.len(), 16);
        assert_eq!(image.iter().filter(|&&p| p == 0).count(), 4);
    }
}
