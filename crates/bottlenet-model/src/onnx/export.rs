//! The networks as ONNX graphs: the phone half (backbone head + reduction unit, ending where the
//! quantizer of eq. 1 begins), the server half (restoration unit + backbone tail, starting from
//! the dequantized tensor) and a whole network.
//!
//! Each graph walks the same modules, in the same order, as the burn `forward` it mirrors
//! (`resnet.rs`, `bottleneck.rs`); the codec between the halves is not part of either graph,
//! because it is not a tensor program (JPEG) and phone and server must run our own encoder and
//! decoder so the server sees the pixels training saw (DESIGN §1).

use super::graph::{Dim, GraphBuilder, value_info};
use super::model::{BATCH, FEATURES, IMAGE, LOGITS, OnnxModel};
use crate::bottleneck::{ReductionUnit, RestorationUnit};
use crate::bottlenet::{BottleNet, BottleNetConfig, CloudHalf, MobileHalf};
use crate::error::Result;
use crate::resnet::Block;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;

fn batch_dims(shape: [usize; 3]) -> [Dim; 4] {
    [Dim::Symbol(BATCH), Dim::Fixed(shape[0]), Dim::Fixed(shape[1]), Dim::Fixed(shape[2])]
}

/// `conv → bn`, optionally followed by ReLU; the conv alone when the BN is folded into it
/// (a conv with a bias, see `crate::fold`).
fn conv_bn(g: &mut GraphBuilder, conv: &Conv2d, conv_path: &str, bn: &BatchNorm, bn_path: &str, x: String, relu: bool) -> Result<String> {
    let y = g.conv2d(conv, conv_path, x)?;
    let y = if conv.bias.is_some() { y } else { g.batch_norm(bn, bn_path, y)? };
    Ok(if relu { g.relu(bn_path, y) } else { y })
}

/// torchvision's stem: `conv1 → bn1 → ReLU`, then the max-pool when the network has one.
fn stem(g: &mut GraphBuilder, conv1: &Conv2d, bn1: &BatchNorm, maxpool: &Option<MaxPool2d>, prefix: &str, x: String) -> Result<String> {
    let y = conv_bn(g, conv1, &format!("{prefix}conv1"), bn1, &format!("{prefix}bn1"), x, true)?;
    match maxpool {
        Some(pool) => g.max_pool2d(pool, &format!("{prefix}maxpool"), y),
        None => Ok(y),
    }
}

/// One residual block, as [`Block::forward`]: the shortcut (identity or `downsample.0/1`), the
/// body, the add, the final ReLU.
fn block(g: &mut GraphBuilder, block: &Block, path: &str, x: String) -> Result<String> {
    let p = |name: &str| format!("{path}.{name}");
    let (downsample, body) = match block {
        Block::Basic(b) => {
            let y = conv_bn(g, &b.conv1, &p("conv1"), &b.bn1, &p("bn1"), x.clone(), true)?;
            (&b.downsample, conv_bn(g, &b.conv2, &p("conv2"), &b.bn2, &p("bn2"), y, false)?)
        }
        Block::Bottleneck(b) => {
            let y = conv_bn(g, &b.conv1, &p("conv1"), &b.bn1, &p("bn1"), x.clone(), true)?;
            let y = conv_bn(g, &b.conv2, &p("conv2"), &b.bn2, &p("bn2"), y, true)?;
            (&b.downsample, conv_bn(g, &b.conv3, &p("conv3"), &b.bn3, &p("bn3"), y, false)?)
        }
    };
    let identity = match downsample {
        Some((conv, bn)) => conv_bn(g, conv, &p("downsample.0"), bn, &p("downsample.1"), x, false)?,
        None => x,
    };
    let sum = g.add(path, body, identity);
    Ok(g.relu(path, sum))
}

/// Blocks in order under torchvision's names; `None` entries (the other side's blocks) are skipped.
fn stages<'a>(
    g: &mut GraphBuilder,
    prefix: &str,
    layers: [impl IntoIterator<Item = Option<&'a Block>>; 4],
    mut x: String,
) -> Result<String> {
    for (stage, layer) in layers.into_iter().enumerate() {
        for (index, b) in layer.into_iter().enumerate() {
            if let Some(b) = b {
                x = block(g, b, &format!("{prefix}layer{}.{index}", stage + 1), x)?;
            }
        }
    }
    Ok(x)
}

/// As [`ReductionUnit::forward`]: 1×1 conv + BN + ReLU, then the strided k×k conv + BN + ReLU
/// when `s > 1`.
fn reduction(g: &mut GraphBuilder, unit: &ReductionUnit, x: String) -> Result<String> {
    let y = conv_bn(g, &unit.channel_conv, "reduction.channel_conv", &unit.channel_bn, "reduction.channel_bn", x, true)?;
    match (&unit.spatial_conv, &unit.spatial_bn) {
        (Some(conv), Some(bn)) => conv_bn(g, conv, "reduction.spatial_conv", bn, "reduction.spatial_bn", y, true),
        _ => Ok(y),
    }
}

/// As [`RestorationUnit::forward`]: the transposed conv + BN + ReLU when `s > 1`, then the
/// 1×1 conv + BN + ReLU back to `C` channels.
fn restoration(g: &mut GraphBuilder, unit: &RestorationUnit, z: String) -> Result<String> {
    let y = match (&unit.spatial_conv, &unit.spatial_bn) {
        (Some(conv), Some(bn)) => {
            let y = g.conv_transpose2d(conv, "restoration.spatial_conv", z)?;
            let y = if conv.bias.is_some() { y } else { g.batch_norm(bn, "restoration.spatial_bn", y)? };
            g.relu("restoration.spatial_bn", y)
        }
        _ => z,
    };
    conv_bn(g, &unit.channel_conv, "restoration.channel_conv", &unit.channel_bn, "restoration.channel_bn", y, true)
}

fn model(g: GraphBuilder, name: &str, input: (&str, [Dim; 4]), output: (&str, Vec<Dim>), config: &BottleNetConfig, half: &str) -> Result<OnnxModel> {
    let graph = g.finish(name, value_info(input.0, &input.1), output.0, &output.1)?;
    Ok(OnnxModel::new(graph, config, half))
}

/// The phone half: `image` `[batch, C, H, W]` (normalised as the bundle's manifest says) →
/// `features` `[batch, c', ceil(H_j/s), ceil(W_j/s)]`, the tensor eq. 1 quantizes.
pub fn export_mobile(half: &MobileHalf) -> Result<OnnxModel> {
    let config = half.config();
    let reduced = config.bottleneck()?.map(|b| b.reduced_shape()).ok_or_else(|| crate::Error::Config("the phone half needs a split".into()))?;
    let mut g = GraphBuilder::default();
    let x = g.input(IMAGE);
    let head = &half.backbone;
    let y = stem(&mut g, &head.conv1, &head.bn1, &head.maxpool, "backbone.", x)?;
    let layers = [&head.layer1, &head.layer2, &head.layer3, &head.layer4].map(|l| l.iter().map(Some));
    let y = stages(&mut g, "backbone.", layers, y)?;
    reduction(&mut g, &half.reduction, y)?;
    let name = format!("bottlenet-{}-{}-mobile", config.arch, config.split_name());
    model(g, &name, (IMAGE, batch_dims(config.input_shape)), (FEATURES, batch_dims(reduced).to_vec()), config, "mobile")
}

/// The server half: `features` `[batch, c', H', W']` (dequantized) → `logits` `[batch, classes]`.
pub fn export_cloud(half: &CloudHalf) -> Result<OnnxModel> {
    let config = half.config();
    let reduced = half.reduced_shape()?;
    let mut g = GraphBuilder::default();
    let z = g.input(FEATURES);
    let y = restoration(&mut g, &half.restoration, z)?;
    let tail = &half.backbone;
    let layers = [&tail.layer1, &tail.layer2, &tail.layer3, &tail.layer4].map(|l| l.iter().map(Option::as_ref));
    let y = stages(&mut g, "backbone.", layers, y)?;
    let pooled = g.global_average_pool(y);
    g.linear(&tail.fc, "backbone.fc", pooled)?;
    let name = format!("bottlenet-{}-{}-cloud", config.arch, config.split_name());
    let logits = vec![Dim::Symbol(BATCH), Dim::Fixed(config.num_classes)];
    model(g, &name, (FEATURES, batch_dims(reduced)), (LOGITS, logits), config, "cloud")
}

/// A whole network, `image` → `logits`: the unsplit backbone, or with a split the phone half,
/// the bottleneck without codec ([`crate::CodecMode::Identity`]) and the server half in one graph.
pub fn export_full(net: &BottleNet) -> Result<OnnxModel> {
    let config = net.config();
    let b = &net.backbone;
    let mut g = GraphBuilder::default();
    let x = g.input(IMAGE);
    let mut y = stem(&mut g, &b.conv1, &b.bn1, &b.maxpool, "backbone.", x)?;
    let layers = [&b.layer1, &b.layer2, &b.layer3, &b.layer4];
    let split = match (config.split, &net.bottleneck) {
        (Some(j), Some(unit)) => Some((j, unit)),
        _ => None,
    };
    let mut k = 0;
    for (stage, layer) in layers.into_iter().enumerate() {
        for (index, blk) in layer.iter().enumerate() {
            y = block(&mut g, blk, &format!("backbone.layer{}.{index}", stage + 1), y)?;
            k += 1;
            if let Some((j, unit)) = split
                && j == k
            {
                let z = reduction(&mut g, &unit.reduction, y)?;
                y = restoration(&mut g, &unit.restoration, z)?;
            }
        }
    }
    let pooled = g.global_average_pool(y);
    g.linear(&b.fc, "backbone.fc", pooled)?;
    let name = format!("bottlenet-{}-{}-full", config.arch, config.split_name());
    let logits = vec![Dim::Symbol(BATCH), Dim::Fixed(config.num_classes)];
    model(g, &name, (IMAGE, batch_dims(config.input_shape)), (LOGITS, logits), config, "full")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)
mod tests {
    use super::*;
    use crate::{Arch, DeviceChoice};

    fn net(split: usize, c_prime: usize, s: usize) -> BottleNet {
        let device = DeviceChoice::Flex.device().unwrap();
        BottleNet::new(&BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_split(split, c_prime, s), &device).unwrap()
    }

    #[test]
    fn phone_half_ends_at_the_reduction_unit_with_documented_names() {
        let model = export_mobile(&net(1, 1, 2).mobile_half().unwrap()).unwrap();
        let ops = model.op_types();
        // Stem (conv, bn, relu), one BasicBlock (2 conv/bn, add, 2 relu), reduction (2 × conv, bn, relu).
        assert_eq!(ops.iter().filter(|o| **o == "Conv").count(), 5, "{ops:?}");
        assert_eq!(ops.last(), Some(&"Relu"));
        assert!(!ops.contains(&"ConvTranspose") && !ops.contains(&"Gemm"));
        assert_eq!(model.inputs()[0].describe(), "image [batch, 1, 28, 28]");
        assert_eq!(model.outputs()[0].describe(), "features [batch, 1, 14, 14]");
        let names = model.initializer_names();
        for key in ["backbone.conv1.weight", "backbone.bn1.running_var", "backbone.layer1.0.conv2.weight", "reduction.spatial_conv.weight"] {
            assert!(names.contains(&key), "{key} missing from {names:?}");
        }
        assert_eq!(model.metadata("bottlenet.split"), Some("RB1"));
        assert_eq!(model.metadata("bottlenet.half"), Some("mobile"));
    }

    #[test]
    fn server_half_starts_with_the_transposed_conv_and_ends_in_logits() {
        let model = export_cloud(&net(3, 2, 2).cloud_half().unwrap()).unwrap();
        let ops = model.op_types();
        assert_eq!(ops.first(), Some(&"ConvTranspose"));
        assert_eq!(&ops[ops.len() - 3..], ["GlobalAveragePool", "Flatten", "Gemm"]);
        assert_eq!(model.inputs()[0].describe(), "features [batch, 2, 7, 7]");
        assert_eq!(model.outputs()[0].describe(), "logits [batch, 10]");
        // Blocks 4..6 only: the phone's blocks are not in the server's file.
        let names = model.initializer_names();
        assert!(names.contains(&"backbone.layer2.1.conv1.weight") && names.contains(&"backbone.layer3.0.downsample.0.weight"));
        assert!(!names.iter().any(|n| n.starts_with("backbone.layer1.") || n.starts_with("backbone.layer2.0.") || n.starts_with("backbone.conv1")));
    }

    #[test]
    fn channel_only_bottleneck_has_no_spatial_layers_and_bytes_parse_back() {
        let net = net(2, 4, 1);
        let full = export_full(&net).unwrap();
        assert!(!full.op_types().contains(&"ConvTranspose"));
        assert_eq!(OnnxModel::from_bytes(&full.to_bytes()).unwrap(), full);
        assert!(OnnxModel::from_bytes(b"not a model").is_err());
    }
}
