//! The training loop: compression-aware (paper §2.2), naive, or the plain baseline, with
//! per-epoch atomic checkpoints, exact resume, and a model bundle as the result.

use crate::checkpoint::{self, EpochStats, MODEL_FILE, OPTIMIZER_FILE, TrainState};
use crate::config::{ExperimentConfig, OptimizerKind, Schedule, TrainMode};
use crate::error::{Error, Result};
use crate::evaluate::{EvalReport, batch_tensors, count_correct, evaluate};
use bottlenet_data::{BatchOptions, Batcher, DatasetPair};
use bottlenet_model::{BottleNet, BottleNetConfig, Bundle, CodecMode, DeviceChoice, ImportOptions, Normalization, ResNet, SplitStats, checkpoint_classes, load_torchvision};
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Int, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Files of a training output folder.
pub const FINAL_MODEL: &str = "model.bpk";
pub const RESULT_FILE: &str = "result.json";
pub const CONFIG_FILE: &str = "config.toml";
pub const BUNDLE_DIR: &str = "bundle";

/// How a run behaves (not part of the experiment).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue from the latest checkpoint in the output folder.
    pub resume: bool,
    /// No progress bars (tests, JSON output).
    pub quiet: bool,
    /// Stop (with [`Error::Interrupted`]) once this many epochs are done and checkpointed, as a
    /// time-sliced cluster job or a killed run would; `--resume` continues from there.
    pub stop_after_epochs: Option<usize>,
    /// The engine that trains: flex (CPU), or a GPU through the `cuda` / `wgpu` features.
    pub device: DeviceChoice,
}

/// What a finished run wrote to `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainResult {
    pub name: String,
    pub mode: TrainMode,
    pub model: BottleNetConfig,
    pub eval: EvalReport,
    pub history: Vec<EpochStats>,
    pub seconds: f64,
    /// The bundle folder (split models only).
    pub bundle: Option<PathBuf>,
    /// One-line notes for the user, e.g. that a checkpoint's classifier was re-initialised.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The learning rate at a point of the run.
pub fn learning_rate(config: &ExperimentConfig, epoch: usize, step: usize, steps_per_epoch: usize) -> f64 {
    let t = &config.train;
    match t.schedule {
        Schedule::Constant => t.lr,
        Schedule::Step => t.lr * t.gamma.powi((epoch / t.step_epochs.max(1)) as i32),
        Schedule::Cosine => {
            let total = (t.epochs * steps_per_epoch).max(1) as f64;
            let done = (epoch * steps_per_epoch + step) as f64;
            0.5 * t.lr * (1.0 + (std::f64::consts::PI * done / total).cos())
        }
    }
}

/// burn initialises parameters lazily, on first use; first use inside a forward pass does not
/// happen in a fixed order, so the seeded generator's draws would land on different parameters
/// from run to run. Touching every parameter once, in module order, fixes the assignment.
fn initialise_in_order(model: &BottleNet) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
}

/// What one optimisation step measured.
#[derive(Debug, Clone, Copy)]
pub struct StepOutcome {
    pub loss: f32,
    pub correct: usize,
}

/// One optimisation step: forward in `mode` (the codec round trip runs in [`CodecMode::Aware`],
/// with the straight-through backward of paper §2.2), cross-entropy, backward, optimizer update.
#[allow(clippy::too_many_arguments)]
pub fn optimisation_step(
    model: BottleNet,
    optim: &mut ModuleOptimizer,
    loss_fn: &CrossEntropyLoss,
    images: Tensor<4>,
    targets: Tensor<1, Int>,
    labels: &[u32],
    mode: CodecMode,
    lr: f64,
) -> Result<(BottleNet, StepOutcome)> {
    let logits = model.forward(images, mode)?;
    let correct = count_correct(logits.clone().detach(), labels)?;
    let loss = loss_fn.forward(logits, targets);
    let loss_value = loss.clone().into_data().convert::<f32>().try_into_vec::<f32>().ok().and_then(|v| v.first().copied()).unwrap_or(f32::NAN);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = optim.step(lr, model, grads);
    Ok((model, StepOutcome { loss: loss_value, correct }))
}

/// The optimizer an experiment asks for (SGD with momentum, or Adam; optional weight decay).
pub fn optimizer(config: &ExperimentConfig) -> ModuleOptimizer {
    let t = &config.train;
    let decay = (t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32));
    match t.optimizer {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum((t.momentum > 0.0).then(|| MomentumConfig::new().with_momentum(t.momentum).with_dampening(0.0)))
            .with_weight_decay(decay)
            .init(),
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).init(),
    }
}

/// Loads a BottleNet saved by a previous run (`model.bpk` + `result.json` in `dir`).
pub fn load_trained(dir: &Path, device: &Device) -> Result<BottleNet> {
    let result_path = dir.join(RESULT_FILE);
    let text = std::fs::read_to_string(&result_path).map_err(|e| Error::io(format!("reading {} (is {} a training output folder?)", result_path.display(), dir.display()), e))?;
    let result: TrainResult = serde_json::from_str(&text).map_err(|e| Error::Checkpoint { path: result_path, reason: e.to_string() })?;
    load_weights(BottleNet::new(&result.model, device)?, &dir.join(FINAL_MODEL))
}

fn load_weights(model: BottleNet, path: &Path) -> Result<BottleNet> {
    let loaded = model.try_load_file(path).map_err(|e| Error::Checkpoint { path: path.to_path_buf(), reason: format!("{e:?}") })?;
    // Tensors loaded from a file arrive without the autodiff flag; without this a resumed run
    // or a fine-tune from a trained baseline would silently leave those weights frozen.
    Ok(loaded.set_require_grad(true))
}

/// The starting model: scratch, a previous run's backbone, or torchvision weights. Notes for the
/// user (a re-initialised classifier) are pushed onto `notes`.
fn initial_model(config: &ExperimentConfig, model_config: &BottleNetConfig, device: &Device, notes: &mut Vec<String>) -> Result<BottleNet> {
    let Some(init) = &config.train.init else { return Ok(BottleNet::new(model_config, device)?) };
    let extension = init.extension().and_then(|e| e.to_str()).unwrap_or("");
    let backbone: ResNet = if matches!(extension, "pth" | "pt" | "safetensors") {
        let fresh = ResNet::new(&model_config.backbone(), device)?;
        // The checkpoint's classifier is kept only when it predicts this dataset's classes;
        // otherwise (an ImageNet checkpoint fine-tuned on a 10-class folder) fc starts fresh.
        let checkpoint_classes = checkpoint_classes(init)?;
        let include_fc = checkpoint_classes == Some(model_config.num_classes);
        if !include_fc {
            let held = checkpoint_classes.map_or_else(|| "no fc".to_string(), |n| format!("a {n}-class fc"));
            notes.push(format!("fc re-initialised for {} classes ({} holds {held})", model_config.num_classes, init.display()));
        }
        load_torchvision(fresh, init, ImportOptions { include_fc })?
    } else {
        let trained = load_trained(init, device)?;
        if trained.config().backbone() != model_config.backbone() {
            return Err(Error::Invalid(format!(
                "init {} holds a {:?} backbone, this experiment needs {:?}",
                init.display(),
                trained.config().backbone(),
                model_config.backbone()
            )));
        }
        trained.backbone
    };
    Ok(BottleNet::from_backbone(model_config, backbone, device)?)
}

/// Whether `out` already holds a training run: a checkpoint, a final model or a result. A new run
/// there would replace them, so it must be asked for with `--resume` (which continues it).
pub fn holds_a_run(out: &Path) -> bool {
    checkpoint::checkpoints_dir(out).exists() || out.join(FINAL_MODEL).exists() || out.join(RESULT_FILE).exists()
}

/// A progress bar on stderr in the project's style, hidden when `quiet`.
pub fn progress_bar(quiet: bool, len: u64, prefix: String) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_prefix(prefix);
    if let Ok(style) = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Trains `config` on `data` into `out`, returning what was written to `out/result.json`.
pub fn train(config: &ExperimentConfig, data: &DatasetPair, out: &Path, options: &RunOptions) -> Result<TrainResult> {
    let started = Instant::now();
    let device = options.device.device()?.autodiff();
    // Seeds weight initialisation (burn's generator may be global to the backend).
    device.seed(config.train.seed);
    let model_config = config.model_config(data.train.input_shape(), data.train.num_classes());
    model_config.validate()?;
    if !options.resume && holds_a_run(out) {
        return Err(Error::Invalid(format!(
            "{} already holds a training run; pass --resume to continue it, or choose another --out folder",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(format!("creating {}", out.display()), e))?;

    let mut notes = Vec::new();
    let mut model = initial_model(config, &model_config, &device, &mut notes)?;
    let mut optim = optimizer(config);
    let mut state = TrainState { epochs_done: 0, config: config.clone(), history: Vec::new() };
    if options.resume
        && let Some((dir, saved)) = checkpoint::latest(out)?
    {
        if saved.config.clone().with_epochs(config.train.epochs) != *config {
            return Err(Error::Checkpoint { path: dir, reason: "was written by a different experiment configuration; use a new output folder or the same config".into() });
        }
        model = load_weights(model, &dir.join(MODEL_FILE))?;
        optim = optim.load(dir.join(OPTIMIZER_FILE)).map_err(|e| Error::Checkpoint { path: dir.clone(), reason: format!("{e:?}") })?;
        state = saved;
        state.config = config.clone();
    }
    // Written only once the folder is known to be this experiment's (fresh, or a matching resume),
    // so a refused resume leaves the run's own config in place.
    checkpoint::write_atomic(&out.join(CONFIG_FILE), config.to_toml().as_bytes())?;
    initialise_in_order(&model);
    if config.train.freeze_backbone {
        model.backbone = model.backbone.no_grad();
    }

    let batcher = Batcher::new(data.train.clone(), BatchOptions::train(config.train.batch_size, config.train.seed))?;
    let steps_per_epoch = config.train.steps_per_epoch.map_or(batcher.num_batches(), |cap| cap.min(batcher.num_batches()));
    if steps_per_epoch == 0 {
        return Err(Error::Invalid(format!("{} training images are fewer than one batch of {}", data.train.len(), config.train.batch_size)));
    }
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let train_mode = config.train.mode.train_codec_mode();

    for epoch in state.epochs_done..config.train.epochs {
        let epoch_start = Instant::now();
        let bar = progress_bar(options.quiet, steps_per_epoch as u64, format!("epoch {}/{}", epoch + 1, config.train.epochs));
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = config.train.lr;
        for (step, batch) in batcher.epoch(epoch as u64).take(steps_per_epoch).enumerate() {
            let batch = batch?;
            lr = learning_rate(config, epoch, step, steps_per_epoch);
            let (images, targets) = batch_tensors(batch.pixels, &batch.labels, batch.shape, &device);
            let outcome;
            (model, outcome) = optimisation_step(model, &mut optim, &loss_fn, images, targets, &batch.labels, train_mode, lr)?;
            if !outcome.loss.is_finite() {
                return Err(Error::Diverged { loss: outcome.loss, epoch: epoch + 1, step: step + 1 });
            }
            loss_sum += f64::from(outcome.loss);
            correct += outcome.correct;
            seen += batch.labels.len();
            bar.inc(1);
            bar.set_message(format!("loss {:.3} acc {:.1}%", loss_sum / (step + 1) as f64, 100.0 * correct as f64 / seen as f64));
        }
        bar.finish();
        state.history.push(EpochStats {
            epoch: epoch + 1,
            loss: loss_sum / steps_per_epoch as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            lr,
            seconds: epoch_start.elapsed().as_secs_f64(),
        });
        state.epochs_done = epoch + 1;
        checkpoint::save(out, &state, |dir| {
            // The inference copy: saving the autodiff copy drops BatchNorm's running statistics.
            model.valid().save_file(dir.join(MODEL_FILE)).map_err(|e| Error::Checkpoint { path: dir.to_path_buf(), reason: format!("{e:?}") })?;
            optim.save(dir.join(OPTIMIZER_FILE)).map_err(|e| Error::Checkpoint { path: dir.to_path_buf(), reason: format!("{e:?}") })
        })?;
        if options.stop_after_epochs.is_some_and(|stop| state.epochs_done >= stop && state.epochs_done < config.train.epochs) {
            return Err(Error::Interrupted { epochs_done: state.epochs_done });
        }
    }

    let inference = model.valid();
    let bar = progress_bar(options.quiet, 0, "evaluate".into());
    let eval = evaluate(&inference, &data.test, config.train.mode.eval_codec_mode(), 256, config.data.test_limit, &bar)?;
    bar.finish();
    let final_path = out.join(FINAL_MODEL);
    let tmp_path = out.join(format!(".{FINAL_MODEL}.tmp"));
    inference.clone().save_file(&tmp_path).map_err(|e| Error::Checkpoint { path: tmp_path.clone(), reason: format!("{e:?}") })?;
    std::fs::rename(&tmp_path, &final_path).map_err(|e| Error::io(format!("moving the model to {}", final_path.display()), e))?;

    let bundle = if model_config.split.is_some() {
        let normalization = data.train.normalization();
        let mut bundle = Bundle::new(
            model_config.arch,
            model_config.width,
            model_config.input_shape,
            model_config.num_classes,
            Normalization { mean: normalization.mean().to_vec(), std: normalization.std().to_vec() },
            data.train.class_names().to_vec(),
        )?;
        bundle.set_resize(data.train.resize())?;
        bundle.add(&inference, SplitStats { accuracy: Some(eval.accuracy), mean_bytes: Some(eval.mean_bytes) })?;
        let dir = out.join(BUNDLE_DIR);
        bundle.save(&dir)?;
        Some(dir)
    } else {
        None
    };
    let result = TrainResult {
        name: config.name.clone(),
        mode: config.train.mode,
        model: model_config,
        eval,
        history: state.history,
        seconds: started.elapsed().as_secs_f64(),
        bundle,
        notes,
    };
    let json = serde_json::to_string_pretty(&result).map_err(|e| Error::Invalid(format!("serialising the result: {e}")))?;
    checkpoint::write_atomic(&out.join(RESULT_FILE), json.as_bytes())?;
    Ok(result)
}
