//! BottleNet = backbone + split point `j` + bottleneck unit + feature codec (paper Fig. 1, 3), and
//! its two deployable halves: [`MobileHalf`] (head, reduction, codec encode) for the phone and
//! [`CloudHalf`] (codec decode, restoration, tail) for the server.

use crate::arch::{Arch, BackboneConfig, default_width};
use crate::bottleneck::{BottleneckSpec, BottleneckUnit, ReductionUnit, RestorationUnit};
use crate::error::{Error, Result};
use crate::observe::{OpObserver, Unobserved};
use crate::resnet::{ResNet, ResNetHead, ResNetTail};
use crate::straight_through::{codec_straight_through, to_host};
use bottlenet_codec::{CodecParams, FeatureTensor, Shape};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Everything needed to build a [`BottleNet`]; serialised beside every trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BottleNetConfig {
    pub arch: Arch,
    /// Channel multiplier of the compact model (1 for the torchvision ResNets).
    #[serde(default = "default_width")]
    pub width: usize,
    /// One sample's input, `[C, H, W]`.
    pub input_shape: [usize; 3],
    pub num_classes: usize,
    /// Split point `j` (the bottleneck follows residual block `j`); `None` is the unmodified
    /// backbone.
    pub split: Option<usize>,
    /// Channels kept by the reduction unit, `c'`.
    pub c_prime: usize,
    /// Spatial reduction factor `s` (1 = none).
    pub s: usize,
    /// How features travel: codec, JPEG quality, quantizer bits.
    pub codec: CodecParams,
}

impl BottleNetConfig {
    /// The unmodified backbone (no split), with the paper's codec parameters for later use.
    pub fn new(arch: Arch, input_shape: [usize; 3], num_classes: usize) -> Self {
        Self { arch, width: 1, input_shape, num_classes, split: None, c_prime: 1, s: 1, codec: CodecParams::paper() }
    }

    /// Puts a `(c', s)` bottleneck after residual block `split`.
    pub fn with_split(mut self, split: usize, c_prime: usize, s: usize) -> Self {
        self.split = Some(split);
        self.c_prime = c_prime;
        self.s = s;
        self
    }

    /// Sets the compact model's width multiplier.
    pub fn with_width(mut self, width: usize) -> Self {
        self.width = width;
        self
    }

    /// Sets the codec parameters.
    pub fn with_codec(mut self, codec: CodecParams) -> Self {
        self.codec = codec;
        self
    }

    /// The backbone part of the configuration.
    pub fn backbone(&self) -> BackboneConfig {
        BackboneConfig { arch: self.arch, in_channels: self.input_shape[0], num_classes: self.num_classes, width: self.width }
    }

    /// The bottleneck's placement and size, or `None` without a split.
    pub fn bottleneck(&self) -> Result<Option<BottleneckSpec>> {
        let Some(j) = self.split else { return Ok(None) };
        let spec = self.backbone().spec()?;
        spec.check_split(j, 1)?;
        let input = spec.shape_at(self.input_shape, j)?;
        let bottleneck = BottleneckSpec { input, c_prime: self.c_prime, s: self.s };
        bottleneck.validate()?;
        Ok(Some(bottleneck))
    }

    /// Checks every value; called by every constructor.
    pub fn validate(&self) -> Result<()> {
        if self.input_shape.contains(&0) {
            return Err(Error::Config(format!("input shape {:?} has an empty side", self.input_shape)));
        }
        self.backbone().validate()?;
        self.bottleneck()?;
        self.codec.validate()?;
        Ok(())
    }

    /// The split's name, `RBj`, or `plain` without a split.
    pub fn split_name(&self) -> String {
        self.split.map_or_else(|| "plain".to_string(), |j| format!("RB{j}"))
    }

    fn require_split(&self) -> Result<(usize, BottleneckSpec)> {
        match (self.split, self.bottleneck()?) {
            (Some(j), Some(spec)) => Ok((j, spec)),
            _ => Err(Error::Config("this operation needs a split point (config.split is None)".into())),
        }
    }
}

/// What happens between the reduction and the restoration unit in one forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodecMode {
    /// No bottleneck at all: the unmodified backbone (head straight into tail).
    None,
    /// Bottleneck without codec: reduction straight into restoration ("naive" training, DESIGN §2).
    Identity,
    /// Bottleneck with the real codec round trip, straight-through backward (paper §2.2).
    #[default]
    Aware,
}

impl CodecMode {
    pub const ALL: [CodecMode; 3] = [CodecMode::None, CodecMode::Identity, CodecMode::Aware];

    pub fn name(self) -> &'static str {
        match self {
            CodecMode::None => "none",
            CodecMode::Identity => "identity",
            CodecMode::Aware => "aware",
        }
    }
}

impl fmt::Display for CodecMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CodecMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::Config(format!("unknown codec mode {s:?}; expected one of: none, identity, aware")))
    }
}

/// Logits of one forward pass and, in [`CodecMode::Aware`], each sample's real frame size.
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// `[batch, num_classes]`.
    pub logits: Tensor<2>,
    /// Bytes on the wire per sample, headers included (Aware mode only).
    pub frame_bytes: Option<Vec<usize>>,
}

/// A backbone with a bottleneck unit after block `j`, trained end to end.
#[derive(Module, Debug)]
pub struct BottleNet {
    /// The backbone, under torchvision's parameter names.
    pub backbone: ResNet,
    /// Present when the configuration has a split.
    pub bottleneck: Option<BottleneckUnit>,
    #[module(skip)]
    config: BottleNetConfig,
}

fn check_input(x: &Tensor<4>, shape: [usize; 3]) -> Result<()> {
    let dims = x.dims();
    if dims[1..] != shape || dims[0] == 0 {
        return Err(Error::shape("model input", format!("[batch>0, {}, {}, {}]", shape[0], shape[1], shape[2]), dims));
    }
    Ok(())
}

/// Encodes every sample of `z` (`[batch, c', H', W']`) into one wire frame each.
fn encode_batch(z: Tensor<4>, params: &CodecParams) -> Result<Vec<Vec<u8>>> {
    let [n, c, h, w] = z.dims();
    let host = to_host(z)?;
    let shape = Shape::new(c, h, w);
    let per = shape.len();
    (0..n)
        .map(|i| {
            let sample = FeatureTensor::new(shape, host[i * per..(i + 1) * per].to_vec())?;
            Ok(bottlenet_codec::encode(&sample, params)?)
        })
        .collect()
}

/// Decodes frames into one `[batch, c', H', W']` tensor, refusing frames of another shape.
fn decode_batch<F: AsRef<[u8]>>(frames: &[F], expected: [usize; 3], device: &Device) -> Result<Tensor<4>> {
    if frames.is_empty() {
        return Err(Error::Config("no frames to decode".into()));
    }
    let mut data = Vec::with_capacity(frames.len() * expected.iter().product::<usize>());
    for (i, frame) in frames.iter().enumerate() {
        let decoded = bottlenet_codec::decode(frame.as_ref())?;
        let got = [decoded.shape.channels, decoded.shape.height, decoded.shape.width];
        if got != expected {
            return Err(Error::shape(format!("frame {i}"), expected, got));
        }
        data.extend(decoded.data);
    }
    let [c, h, w] = expected;
    Ok(Tensor::<4>::from_data(TensorData::new(data, [frames.len(), c, h, w]), device))
}

impl BottleNet {
    /// A freshly initialised BottleNet.
    pub fn new(config: &BottleNetConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let backbone = ResNet::new(&config.backbone(), device)?;
        Self::from_backbone(config, backbone, device)
    }

    /// A BottleNet around an existing (e.g. pretrained) backbone, with a fresh bottleneck unit.
    pub fn from_backbone(config: &BottleNetConfig, backbone: ResNet, device: &Device) -> Result<Self> {
        config.validate()?;
        if *backbone.config() != config.backbone() {
            return Err(Error::Config(format!(
                "backbone {:?} does not match the configuration {:?}",
                backbone.config(),
                config.backbone()
            )));
        }
        let bottleneck = config.bottleneck()?.map(|spec| BottleneckUnit::new(&spec, device)).transpose()?;
        Ok(Self { backbone, bottleneck, config: config.clone() })
    }

    /// The configuration this model was built from.
    pub fn config(&self) -> &BottleNetConfig {
        &self.config
    }

    /// Logits for a batch of images.
    ///
    /// # Shapes
    /// - `x`: `[batch, C, H, W]` with `[C, H, W] = config.input_shape`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, x: Tensor<4>, mode: CodecMode) -> Result<Tensor<2>> {
        Ok(self.forward_output(x, mode)?.logits)
    }

    /// Like [`BottleNet::forward`], also returning each sample's frame size in Aware mode.
    pub fn forward_output(&self, x: Tensor<4>, mode: CodecMode) -> Result<ForwardOutput> {
        check_input(&x, self.config.input_shape)?;
        let (j, unit) = match (self.config.split, &self.bottleneck, mode) {
            (Some(j), Some(unit), CodecMode::Identity | CodecMode::Aware) => (j, unit),
            (_, _, CodecMode::None) | (None, _, CodecMode::Identity) => {
                return Ok(ForwardOutput { logits: self.backbone.forward(x)?, frame_bytes: None });
            }
            _ => return Err(Error::Config("codec mode aware needs a split point and a bottleneck".into())),
        };
        let z = unit.reduction.forward(self.backbone.head(x, j)?)?;
        let (z, frame_bytes) = match mode {
            CodecMode::Aware => {
                let (z, sizes) = codec_straight_through(z, &self.config.codec)?;
                (z, Some(sizes))
            }
            _ => (z, None),
        };
        let logits = self.backbone.tail(unit.restoration.forward(z)?, j)?;
        Ok(ForwardOutput { logits, frame_bytes })
    }

    /// The phone's work: head, reduction and codec encode, one frame per sample.
    pub fn encode(&self, images: Tensor<4>) -> Result<Vec<Vec<u8>>> {
        let (j, _) = self.config.require_split()?;
        check_input(&images, self.config.input_shape)?;
        let unit = self.unit()?;
        let z = unit.reduction.forward(self.backbone.head(images, j)?)?;
        encode_batch(z, &self.config.codec)
    }

    /// The server's work: codec decode, restoration and tail. Frames must carry the reduced shape.
    pub fn decode<F: AsRef<[u8]>>(&self, frames: &[F]) -> Result<Tensor<2>> {
        let (j, spec) = self.config.require_split()?;
        let unit = self.unit()?;
        let z = decode_batch(frames, spec.reduced_shape(), &self.device())?;
        self.backbone.tail(unit.restoration.forward(z)?, j)
    }

    /// A copy of the phone's half (head + reduction).
    pub fn mobile_half(&self) -> Result<MobileHalf> {
        let (j, _) = self.config.require_split()?;
        Ok(MobileHalf {
            backbone: self.backbone.head_part(j)?,
            reduction: self.unit()?.reduction.clone(),
            config: self.config.clone(),
        })
    }

    /// A copy of the server's half (restoration + tail).
    pub fn cloud_half(&self) -> Result<CloudHalf> {
        let (j, _) = self.config.require_split()?;
        Ok(CloudHalf {
            restoration: self.unit()?.restoration.clone(),
            backbone: self.backbone.tail_part(j)?,
            config: self.config.clone(),
        })
    }

    /// The device holding the weights.
    pub fn device(&self) -> Device {
        self.backbone.fc.weight.val().device()
    }

    fn unit(&self) -> Result<&BottleneckUnit> {
        self.bottleneck.as_ref().ok_or_else(|| Error::Config("model has no bottleneck unit".into()))
    }
}

/// The phone's half of a split BottleNet: backbone head and reduction unit (paper §3.4).
#[derive(Module, Debug)]
pub struct MobileHalf {
    pub backbone: ResNetHead,
    pub reduction: ReductionUnit,
    #[module(skip)]
    config: BottleNetConfig,
}

/// The server's half of a split BottleNet: restoration unit and backbone tail (paper §3.4).
#[derive(Module, Debug)]
pub struct CloudHalf {
    pub restoration: RestorationUnit,
    pub backbone: ResNetTail,
    #[module(skip)]
    config: BottleNetConfig,
}

impl MobileHalf {
    /// A freshly initialised phone half, to load weights into.
    pub fn new(config: &BottleNetConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let (j, spec) = config.require_split()?;
        Ok(Self {
            backbone: ResNetHead::new(&config.backbone(), j, device)?,
            reduction: ReductionUnit::new(&spec, device)?,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &BottleNetConfig {
        &self.config
    }

    /// Head and reduction: the tensor that goes into the codec.
    ///
    /// # Shapes
    /// - `images`: `[batch, C, H, W]` with `[C, H, W] = config.input_shape`
    /// - output: `[batch, c', ceil(H_j/s), ceil(W_j/s)]`
    pub fn features(&self, images: Tensor<4>) -> Result<Tensor<4>> {
        self.features_observed(images, &mut Unobserved)
    }

    /// [`MobileHalf::features`], each operation run through `obs`.
    pub fn features_observed(&self, images: Tensor<4>, obs: &mut impl OpObserver) -> Result<Tensor<4>> {
        check_input(&images, self.config.input_shape)?;
        let head = self.backbone.forward_observed(images, obs)?;
        self.reduction.forward_observed(head, obs)
    }

    /// Head, reduction and codec encode: one wire frame per sample.
    pub fn encode(&self, images: Tensor<4>) -> Result<Vec<Vec<u8>>> {
        encode_batch(self.features(images)?, &self.config.codec)
    }
}

impl CloudHalf {
    /// A freshly initialised server half, to load weights into.
    pub fn new(config: &BottleNetConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let (j, spec) = config.require_split()?;
        Ok(Self {
            restoration: RestorationUnit::new(&spec, device)?,
            backbone: ResNetTail::new(&config.backbone(), j, device)?,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &BottleNetConfig {
        &self.config
    }

    /// The shape every incoming frame must carry, `[c', H', W']`.
    pub fn reduced_shape(&self) -> Result<[usize; 3]> {
        Ok(self.config.require_split()?.1.reduced_shape())
    }

    /// Restoration and tail on already decoded features.
    ///
    /// # Shapes
    /// - `z`: `[batch, c', H', W']`
    /// - output: `[batch, num_classes]`
    pub fn logits(&self, z: Tensor<4>) -> Result<Tensor<2>> {
        self.logits_observed(z, &mut Unobserved)
    }

    /// [`CloudHalf::logits`], each operation run through `obs`.
    pub fn logits_observed(&self, z: Tensor<4>, obs: &mut impl OpObserver) -> Result<Tensor<2>> {
        let restored = self.restoration.forward_observed(z, obs)?;
        self.backbone.forward_observed(restored, obs)
    }

    /// Codec decode, restoration and tail for a batch of frames.
    pub fn decode<F: AsRef<[u8]>>(&self, frames: &[F]) -> Result<Tensor<2>> {
        let device = self.backbone.fc.weight.val().device();
        self.logits(decode_batch(frames, self.reduced_shape()?, &device)?)
    }
}
