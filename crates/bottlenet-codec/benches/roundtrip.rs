//! Full wire round trip (quantize → tile → abbreviated JPEG q20 → frame → decode) per shape, and
//! the cloud-only photo (colour JPEG encode → decode, DESIGN §1).
//! `cargo bench -p bottlenet-codec` (`-- photo` for the photo cases alone)

use bottlenet_codec::synthetic::{photo, relu_like};
use bottlenet_codec::{ChromaSampling, CodecParams, PhotoJpeg, Shape, decode, decode_photo, encode};
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

criterion_group!(benches, roundtrip, photo_roundtrip);
criterion_main!(benches);
