//! Full wire round trip (quantize → tile → abbreviated JPEG q20 → frame → decode) per shape.
//! `cargo bench -p bottlenet-codec`

use bottlenet_codec::synthetic::relu_like;
use bottlenet_codec::{CodecParams, Shape, decode, encode};
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

criterion_group!(benches, roundtrip);
criterion_main!(benches);
