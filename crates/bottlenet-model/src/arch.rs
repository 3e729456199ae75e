//! The backbone architectures as data: stages, blocks, channels and strides, from which both the
//! burn modules ([`crate::resnet`]) and the analytic shapes and multiply-accumulate counts
//! ([`crate::info`]) are derived, so the two can never disagree.
//!
//! The torchvision ResNets follow `torchvision.models.resnet` exactly (v1.5: the stride of a
//! bottleneck block sits on its 3×3 conv). Split point `j` is the output of the `j`-th residual
//! block counted over all stages (paper Fig. 5–6: RB1..RB16 of ResNet-50 are `layer1.0 … layer4.2`).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A backbone family member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// torchvision `resnet18`: BasicBlocks [2, 2, 2, 2].
    ResNet18,
    /// torchvision `resnet34`: BasicBlocks [3, 4, 6, 3].
    ResNet34,
    /// torchvision `resnet50`: Bottleneck blocks [3, 4, 6, 3] (the paper's backbone).
    ResNet50,
    /// torchvision `resnet101`: Bottleneck blocks [3, 4, 23, 3].
    ResNet101,
    /// A small ResNet for 28×28 / 32×32 inputs: 3×3 stem without max-pool, BasicBlocks in three
    /// stages of `[16, 32, 64]·width` channels, two blocks each (six split points).
    Compact,
}

/// Which residual block a stage is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlockKind {
    /// Two 3×3 convs (expansion 1).
    Basic,
    /// 1×1 → 3×3 → 1×1 convs (expansion 4).
    Bottleneck,
}

impl BlockKind {
    /// Output channels per `planes`.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

impl Arch {
    /// Every architecture, in the order the CLI lists them.
    pub const ALL: [Arch; 5] = [Arch::ResNet18, Arch::ResNet34, Arch::ResNet50, Arch::ResNet101, Arch::Compact];

    /// The name used on the command line and in JSON (`resnet50`, `compact`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::ResNet18 => "resnet18",
            Arch::ResNet34 => "resnet34",
            Arch::ResNet50 => "resnet50",
            Arch::ResNet101 => "resnet101",
            Arch::Compact => "compact",
        }
    }

    /// The residual block every stage uses.
    pub fn block_kind(self) -> BlockKind {
        match self {
            Arch::ResNet18 | Arch::ResNet34 | Arch::Compact => BlockKind::Basic,
            Arch::ResNet50 | Arch::ResNet101 => BlockKind::Bottleneck,
        }
    }

    /// Blocks per stage.
    pub fn stage_blocks(self) -> &'static [usize] {
        match self {
            Arch::ResNet18 => &[2, 2, 2, 2],
            Arch::ResNet34 | Arch::ResNet50 => &[3, 4, 6, 3],
            Arch::ResNet101 => &[3, 4, 23, 3],
            Arch::Compact => &[2, 2, 2],
        }
    }

    /// Whether this is one of torchvision's ImageNet ResNets (7×7 stem and max-pool).
    pub fn is_torchvision(self) -> bool {
        self != Arch::Compact
    }

    /// Number of split points (residual blocks).
    pub fn num_blocks(self) -> usize {
        self.stage_blocks().iter().sum()
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.trim().replace(['-', '_'], "");
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(&wanted)).ok_or_else(|| {
            Error::Config(format!("unknown architecture {s:?}; expected one of: resnet18, resnet34, resnet50, resnet101, compact"))
        })
    }
}

/// What is needed to build a backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneConfig {
    pub arch: Arch,
    /// Input image channels (3 for RGB, 1 for grayscale).
    pub in_channels: usize,
    /// Classifier outputs.
    pub num_classes: usize,
    /// Channel multiplier of [`Arch::Compact`]; must be 1 for the torchvision ResNets.
    #[serde(default = "default_width")]
    pub width: usize,
}

pub(crate) fn default_width() -> usize {
    1
}

/// The stem: `conv1` (no bias) + `bn1` + ReLU, then for torchvision a 3×3 stride-2 max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StemSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    /// torchvision's `maxpool`: kernel 3, stride 2, padding 1.
    pub max_pool: bool,
}

/// One residual block: its place (`layer{stage}.{index}`) and its channels and stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSpec {
    /// 1-based stage number (`layer1` …).
    pub stage: usize,
    /// 0-based index inside the stage.
    pub index: usize,
    pub kind: BlockKind,
    pub in_channels: usize,
    /// torchvision's `planes` (the bottleneck width of a Bottleneck block).
    pub planes: usize,
    pub out_channels: usize,
    /// Stride of the block (on `conv1` for Basic, on `conv2` for Bottleneck, and on `downsample`).
    pub stride: usize,
    /// torchvision adds `downsample = conv1x1 + BN` when the stride or the channel count changes.
    pub downsample: bool,
}

impl BlockSpec {
    /// torchvision module path, e.g. `layer3.5`.
    pub fn module_path(&self) -> String {
        format!("layer{}.{}", self.stage, self.index)
    }
}

/// A whole backbone, block by block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackboneSpec {
    pub config: BackboneConfig,
    pub stem: StemSpec,
    pub blocks: Vec<BlockSpec>,
    /// Channels entering the classifier.
    pub feature_channels: usize,
}

impl BackboneConfig {
    /// A torchvision ResNet with `num_classes` outputs and RGB input.
    pub fn new(arch: Arch, in_channels: usize, num_classes: usize) -> Self {
        Self { arch, in_channels, num_classes, width: 1 }
    }

    /// Sets the width multiplier (compact model only).
    pub fn with_width(mut self, width: usize) -> Self {
        self.width = width;
        self
    }

    /// Checks the numbers are usable.
    pub fn validate(&self) -> Result<()> {
        if self.in_channels == 0 {
            return Err(Error::Config("input must have at least one channel".into()));
        }
        if self.num_classes == 0 {
            return Err(Error::Config("num_classes must be at least 1".into()));
        }
        if self.width == 0 {
            return Err(Error::Config("width multiplier must be at least 1".into()));
        }
        if self.arch.is_torchvision() && self.width != 1 {
            return Err(Error::Config(format!(
                "{} has torchvision's fixed widths; the width multiplier ({}) applies to the compact model only",
                self.arch, self.width
            )));
        }
        Ok(())
    }

    /// Number of split points (residual blocks).
    pub fn num_blocks(&self) -> usize {
        self.arch.num_blocks()
    }

    /// Expands the configuration into stem and blocks.
    pub fn spec(&self) -> Result<BackboneSpec> {
        self.validate()?;
        let kind = self.arch.block_kind();
        let (stem, planes): (StemSpec, Vec<usize>) = if self.arch.is_torchvision() {
            (
                StemSpec { in_channels: self.in_channels, out_channels: 64, kernel: 7, stride: 2, padding: 3, max_pool: true },
                vec![64, 128, 256, 512],
            )
        } else {
            let w = self.width;
            (
                StemSpec { in_channels: self.in_channels, out_channels: 16 * w, kernel: 3, stride: 1, padding: 1, max_pool: false },
                vec![16 * w, 32 * w, 64 * w],
            )
        };
        let mut blocks = Vec::with_capacity(self.num_blocks());
        let mut channels = stem.out_channels;
        for (stage0, (&count, &planes)) in self.arch.stage_blocks().iter().zip(&planes).enumerate() {
            let out_channels = planes * kind.expansion();
            for index in 0..count {
                // torchvision: the first block of every stage but the first halves the resolution.
                let stride = if index == 0 && stage0 > 0 { 2 } else { 1 };
                blocks.push(BlockSpec {
                    stage: stage0 + 1,
                    index,
                    kind,
                    in_channels: channels,
                    planes,
                    out_channels,
                    stride,
                    downsample: stride != 1 || channels != out_channels,
                });
                channels = out_channels;
            }
        }
        Ok(BackboneSpec { config: *self, stem, blocks, feature_channels: channels })
    }
}

/// Output side of a convolution (PyTorch's floor formula, dilation 1).
pub(crate) fn conv_out(len: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (len + 2 * padding).saturating_sub(kernel) / stride + 1
}

/// Multiply-accumulates of a conv producing `out` (C×H×W) from `in_channels` with a k×k kernel.
pub(crate) fn conv_macs(in_channels: usize, out: [usize; 3], kernel: usize) -> u64 {
    (out[0] * out[1] * out[2]) as u64 * (in_channels * kernel * kernel) as u64
}

impl StemSpec {
    /// Output shape for a `C×H×W` input.
    pub fn output_shape(&self, input: [usize; 3]) -> [usize; 3] {
        let mut h = conv_out(input[1], self.kernel, self.stride, self.padding);
        let mut w = conv_out(input[2], self.kernel, self.stride, self.padding);
        if self.max_pool {
            h = conv_out(h, 3, 2, 1);
            w = conv_out(w, 3, 2, 1);
        }
        [self.out_channels, h, w]
    }

    /// Multiply-accumulates of `conv1` (BN, ReLU and pooling are not counted).
    pub fn macs(&self, input: [usize; 3]) -> u64 {
        let out = [
            self.out_channels,
            conv_out(input[1], self.kernel, self.stride, self.padding),
            conv_out(input[2], self.kernel, self.stride, self.padding),
        ];
        conv_macs(self.in_channels, out, self.kernel)
    }
}

impl BlockSpec {
    /// Output shape for an input of `C×H×W`.
    pub fn output_shape(&self, input: [usize; 3]) -> [usize; 3] {
        // 3×3 pad 1 and 1×1 pad 0 give the same side at any stride: floor((H−1)/s)+1.
        [self.out_channels, conv_out(input[1], 3, self.stride, 1), conv_out(input[2], 3, self.stride, 1)]
    }

    /// Multiply-accumulates of the block's convolutions (BN, ReLU and the residual add are not
    /// counted).
    pub fn macs(&self, input: [usize; 3]) -> u64 {
        let [_, h, w] = self.output_shape(input);
        let down = if self.downsample { conv_macs(self.in_channels, [self.out_channels, h, w], 1) } else { 0 };
        let body = match self.kind {
            BlockKind::Basic => {
                conv_macs(self.in_channels, [self.planes, h, w], 3) + conv_macs(self.planes, [self.planes, h, w], 3)
            }
            BlockKind::Bottleneck => {
                conv_macs(self.in_channels, [self.planes, input[1], input[2]], 1)
                    + conv_macs(self.planes, [self.planes, h, w], 3)
                    + conv_macs(self.planes, [self.out_channels, h, w], 1)
            }
        };
        body + down
    }
}

impl BackboneSpec {
    /// Output shape after split point `j` (`0` = the input itself).
    pub fn shape_at(&self, input: [usize; 3], j: usize) -> Result<[usize; 3]> {
        self.check_split(j, 0)?;
        if j == 0 {
            return Ok(input);
        }
        let mut shape = self.stem.output_shape(input);
        for block in &self.blocks[..j] {
            shape = block.output_shape(shape);
        }
        Ok(shape)
    }

    /// Shapes after every split point `0..=N` (index 0 is the input).
    pub fn shapes(&self, input: [usize; 3]) -> Vec<[usize; 3]> {
        let mut shapes = Vec::with_capacity(self.blocks.len() + 1);
        shapes.push(input);
        let mut shape = self.stem.output_shape(input);
        for block in &self.blocks {
            shape = block.output_shape(shape);
            shapes.push(shape);
        }
        shapes
    }

    /// Multiply-accumulates of every part in order: `[stem, block 1, …, block N, fc]`.
    pub fn part_macs(&self, input: [usize; 3]) -> Vec<u64> {
        let mut macs = Vec::with_capacity(self.blocks.len() + 2);
        macs.push(self.stem.macs(input));
        let mut shape = self.stem.output_shape(input);
        for block in &self.blocks {
            macs.push(block.macs(shape));
            shape = block.output_shape(shape);
        }
        macs.push((self.feature_channels * self.config.num_classes) as u64);
        macs
    }

    /// `(head, tail)` multiply-accumulates when split after block `j` (`0` = cloud-only: the head
    /// is empty; `N` = the tail is only the classifier).
    pub fn split_macs(&self, input: [usize; 3], j: usize) -> Result<(u64, u64)> {
        self.check_split(j, 0)?;
        let parts = self.part_macs(input);
        // parts[0] is the stem, parts[k] block k, the last the classifier.
        let head: u64 = if j == 0 { 0 } else { parts[..=j].iter().sum() };
        let total: u64 = parts.iter().sum();
        Ok((head, total - head))
    }

    /// Fails unless `min <= j <= N`.
    pub fn check_split(&self, j: usize, min: usize) -> Result<()> {
        if j < min || j > self.blocks.len() {
            return Err(Error::NoSuchSplit {
                split: j,
                arch: self.config.arch.to_string(),
                min,
                max: self.blocks.len(),
            });
        }
        Ok(())
    }
}

/// Parses `CxHxW` (e.g. `3x224x224`).
pub fn parse_shape(s: &str) -> Result<[usize; 3]> {
    let sides: Vec<usize> = s
        .split(['x', 'X', '×'])
        .map(|p| p.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Config(format!("bad shape {s:?} (expected CxHxW, e.g. 3x224x224)")))?;
    match sides.as_slice() {
        [c, h, w] if *c > 0 && *h > 0 && *w > 0 => Ok([*c, *h, *w]),
        _ => Err(Error::Config(format!("bad shape {s:?} (expected CxHxW with every side > 0, e.g. 3x224x224)"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)
mod tests {
    use super::*;

    #[test]
    fn resnet50_matches_paper_fig6() {
        // Paper Fig. 6: RB1–3 256×56×56, RB4–7 512×28×28, RB8–13 1024×14×14, RB14–16 2048×7×7.
        let spec = BackboneConfig::new(Arch::ResNet50, 3, 1000).spec().unwrap();
        let shapes = spec.shapes([3, 224, 224]);
        assert_eq!(shapes.len(), 17);
        assert_eq!(shapes[1], [256, 56, 56]);
        assert_eq!(shapes[3], [256, 56, 56]);
        assert_eq!(shapes[4], [512, 28, 28]);
        assert_eq!(shapes[8], [1024, 14, 14]);
        assert_eq!(shapes[13], [1024, 14, 14]);
        assert_eq!(shapes[14], [2048, 7, 7]);
        assert_eq!(shapes[16], [2048, 7, 7]);
        assert_eq!(spec.blocks[0].module_path(), "layer1.0");
        assert_eq!(spec.blocks[15].module_path(), "layer4.2");
        assert!(spec.blocks[0].downsample, "layer1.0 of resnet50 widens 64 -> 256");
        assert!(!spec.blocks[1].downsample);
    }

    #[test]
    fn total_macs_match_published_figures() {
        // torchvision's published GFLOPS (MACs): resnet18 1.81, resnet34 3.66, resnet50 4.09,
        // resnet101 7.80 at 224×224.
        for (arch, gmacs) in [(Arch::ResNet18, 1.81), (Arch::ResNet34, 3.66), (Arch::ResNet50, 4.09), (Arch::ResNet101, 7.80)] {
            let spec = BackboneConfig::new(arch, 3, 1000).spec().unwrap();
            let total: u64 = spec.part_macs([3, 224, 224]).iter().sum();
            let got = total as f64 / 1e9;
            assert!((got - gmacs).abs() < 0.02, "{arch}: {got} GMACs, published {gmacs}");
        }
    }

    #[test]
    fn compact_has_six_split_points() {
        let spec = BackboneConfig::new(Arch::Compact, 1, 10).with_width(2).spec().unwrap();
        let shapes = spec.shapes([1, 28, 28]);
        assert_eq!(shapes[1..], [[32, 28, 28], [32, 28, 28], [64, 14, 14], [64, 14, 14], [128, 7, 7], [128, 7, 7]]);
        assert!(!spec.blocks[0].downsample);
        assert!(spec.blocks[2].downsample);
    }

    #[test]
    fn split_macs_partition_the_total() {
        let spec = BackboneConfig::new(Arch::ResNet18, 3, 1000).spec().unwrap();
        let total: u64 = spec.part_macs([3, 64, 64]).iter().sum();
        for j in 0..=8 {
            let (h, t) = spec.split_macs([3, 64, 64], j).unwrap();
            assert_eq!(h + t, total);
        }
        assert_eq!(spec.split_macs([3, 64, 64], 0).unwrap().0, 0);
        assert!(spec.split_macs([3, 64, 64], 9).is_err());
    }

    #[test]
    fn parses_names_and_shapes() {
        assert_eq!("ResNet-50".parse::<Arch>().unwrap(), Arch::ResNet50);
        assert!("vgg16".parse::<Arch>().is_err());
        assert_eq!(parse_shape("3x224x224").unwrap(), [3, 224, 224]);
        assert!(parse_shape("3x0x2").is_err());
        assert!(parse_shape("224x224").is_err());
        assert!(BackboneConfig::new(Arch::ResNet18, 3, 10).with_width(2).validate().is_err());
    }
}
