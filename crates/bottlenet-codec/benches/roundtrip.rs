//! Full wire round trip (quantize → tile → abbreviated JPEG q20 → frame → decode) per shape, and
//! the cloud-only photo (colour JPEG encode → decode, DESIGN §1).
//! `cargo bench -p bottlenet-codec` (`-- photo` for the photo cases alone)

use bottlenet_codec::quantize::{dequantize, level_to_pixel, pixel_to_level, quantize};
use bottlenet_codec::synthetic::{photo, relu_like};
use bottlenet_codec::tile::{TileGrid, tile, untile};
use bottlenet_codec::{ChromaSampling, CodecParams, GrayImage, PhotoJpeg, Shape, decode, decode_photo, encode};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn roundtrip(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_roundtrip_jpeg_abbrev_q20");
    for shape in [Shape::new(1, 28, 28), Shape::new(2, 28, 28), Shape::new(8, 28, 28), Shape::new(1, 56, 56), Shape::new(64, 56, 56)] {
        let tensor = relu_like(shape, 1);
        let params = CodecParams::paper();
        group.throughput(Throughput::Elements(shape.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(shape), &tensor, |b, t| {
            b.iter(|| decode(&encode(black_box(t), &params).expect("encode")).expect("decode"))
        });
    }
    group.finish();
}

/// Each stage of the 64×56×56 round trip alone, to see where its time goes:
/// `cargo bench -p bottlenet-codec -- stages`.
fn stages(c: &mut Criterion) {
    let shape = Shape::new(64, 56, 56);
    let params = CodecParams::paper();
    let tensor = relu_like(shape, 1);
    let quantized = quantize(&tensor.data, params.bits).expect("quantize");
    let pixels: Vec<u8> = quantized.levels.iter().map(|&l| level_to_pixel(l, params.bits)).collect();
    let (width, height) = TileGrid::for_channels(shape.channels).image_size(&shape);
    let image = GrayImage { width, height, pixels: tile(&pixels, &shape) };
    let codec = params.codec.codec(params.quality);
    let payload = codec.encode(&image).expect("encode");
    let decoded = codec.decode(&payload, width, height).expect("decode");
    let frame = encode(&tensor, &params).expect("frame");

    let mut group = c.benchmark_group(format!("stages_{shape}"));
    group.bench_function("quantize", |b| b.iter(|| quantize(black_box(&tensor.data), params.bits)));
    group.bench_function("level_to_pixel", |b| {
        b.iter(|| black_box(&quantized.levels).iter().map(|&l| level_to_pixel(l, params.bits)).collect::<Vec<u8>>())
    });
    group.bench_function("tile", |b| b.iter(|| tile(black_box(&pixels), &shape)));
    group.bench_function("jpeg_encode", |b| b.iter(|| codec.encode(black_box(&image))));
    group.bench_function("jpeg_decode", |b| b.iter(|| codec.decode(black_box(&payload), width, height)));
    group.bench_function("untile", |b| b.iter(|| untile(black_box(&decoded), &shape)));
    group.bench_function("pixel_to_level", |b| {
        b.iter(|| black_box(&decoded).iter().map(|&p| pixel_to_level(p, params.bits)).collect::<Vec<u8>>())
    });
    group.bench_function("dequantize", |b| {
        b.iter(|| dequantize(black_box(&quantized.levels), params.bits, quantized.min, quantized.max))
    });
    group.bench_function("frame_encode", |b| b.iter(|| encode(black_box(&tensor), &params)));
    group.bench_function("frame_decode", |b| b.iter(|| decode(black_box(&frame))));
    group.finish();
}

/// The photo a cloud-only phone uploads: 3×224×224 (ResNet-50's input), encode then decode.
fn photo_roundtrip(c: &mut Criterion) {
    let mut group = c.benchmark_group("photo_jpeg_roundtrip");
    let (channels, height, width) = (3, 224, 224);
    let image = photo(channels, height, width);
    group.throughput(Throughput::Elements((channels * height * width) as u64));
    for (quality, sampling) in [(50, ChromaSampling::Yuv420), (50, ChromaSampling::Yuv444), (90, ChromaSampling::Yuv420)] {
        let codec = PhotoJpeg { quality, sampling };
        let bytes = codec.encode(channels, height, width, &image).expect("encode").len();
        let id = format!("{channels}x{height}x{width}_q{quality}_{sampling}");
        eprintln!("photo {id}: {bytes} B");
        group.bench_with_input(BenchmarkId::from_parameter(id), &image, |b, img| {
            b.iter(|| {
                let jpeg = codec.encode(channels, height, width, black_box(img)).expect("encode");
                decode_photo(&jpeg, channels, height, width).expect("decode")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, roundtrip, stages, photo_roundtrip);
criterion_main!(benches);
