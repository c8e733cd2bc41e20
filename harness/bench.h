/* Benchmarks (never timed tests): figures printed, one JSON object per line with --json.
 *   qadapt bench-layer --method M --tokens T --in I --out O --rank R --bits N [--json]
 *                      [--merge] [--deployed] [--group-kernel f32|u8s8] [--repeats K] [--dtype f32|bf16]
 * times one adapted layer's forward + backward (median of K repeats after warm-up); --method
 * linear times a plain f32 linear with a trainable weight (full fine-tuning: the floor).
 * --merge adds the merge time (with the PTQ pass where the method needs it), --deployed the
 * deployed layer's inference time at A8 on the kernel the deploy chooses (harness/deploy.h: u8 x s8
 * per-row codes, planes, or groups with --group-kernel u8s8; f32 where the layer has no integer
 * form) and its name.
 * --dtype bf16 trains the layer as `[train] dtype = bf16` does: the frozen base product (the
 * plain linear's every product) with bf16 operands and f32 accumulation. */
#ifndef QA_BENCH_H
#define QA_BENCH_H

#include <stdio.h>

#include "harness/registry.h"
#include "harness/nn.h"
#include "harness/util.h"

typedef struct {
    const char *method;
    int tokens, in, out, rank, bits, repeats, json, merge, deployed;
    int group_kernel; /* qa_group_kernel (deploy.h), for --deployed */
    qa_dtype dtype;
} qa_bench_layer_opts;

/* Parse argv (after the command word); returns 0 or QA_ERR_INPUT with a usage message. */
int qa_bench_layer_parse(int argc, char **argv, qa_bench_layer_opts *o, qa_error *err);
int qa_bench_layer(const qa_bench_layer_opts *o, FILE *out, qa_error *err);

/* qadapt bench-model [--checkpoint P] [--batch B] [--steps S] [--repeats K] [--train-only] [--int8-attention]
 * [--json]:
 * training steps per second of the denoiser (full FP training step with f32 and with bf16 matmuls,
 * interleaved step by step, medians of S each and their ratio; a LoRA fine-tuning step over the
 * W8A8 base) with the matmul FLOP rate of the training step, and deployed sampling throughput
 * (images/s, DDIM with guidance) in f32 against W8A8 fake-quantized and on the integer kernels
 * (unfused, and with the fused operations; --int8-attention: also with integer attention, a
 * variant beyond the paper's W8A8, with its difference from its fake-quantized reference): K
 * interleaved repeats, medians, and where the forward time goes. */
typedef struct {
    const char *checkpoint;
    int batch, steps, json, repeats;
    int train_only; /* --train-only: the f32 and bf16 training steps alone */
    int int8_attention; /* --int8-attention: also sample with integer attention (off by default) */
} qa_bench_model_opts;

int qa_bench_model_parse(int argc, char **argv, qa_bench_model_opts *o, qa_error *err);
int qa_bench_model(const qa_bench_model_opts *o, FILE *out, qa_error *err);

/* qadapt project-sd [--bits N] [--rank R] [--methods a,b,...] [--weights FILE.safetensors]
 * [--pattern REGEX] [--json]: the paper's scale (harness/project_sd.c). SD-1.5 has 16 transformer
 * blocks (widths 320 x5, 640 x5, 1280 x6), each with 8 attention projections: self-attention q,
 * k, v, out and cross-attention q, out ([w, w]) and cross-attention k, v ([w, 768]): 128
 * projections. Per method (every registered one, or those --methods names): memory by category
 * and deployed storage from the plugin's bytes() summed over the layers; the deployed weights'
 * relative error against the layer's weights and the method's own quantizer statistics (e.g.
 * IntLoRA's W_int = 0 share) pooled over the layers; merge and forward+backward latencies
 * measured on this CPU at each distinct shape (tokens: 4096 at width 320, 1024 at 640, 256 at
 * 1280, i.e. a 512x512 image's latents). Without --weights the layers are SD-1.5's shapes with
 * drawn weights; with it, the checkpoint's tensors whose names match --pattern (POSIX extended
 * regular expression; default SD-1.5's attn1/attn2 to_q/to_k/to_v/to_out.0 weights). */
#define QA_PROJECT_MAX_METHODS 32
typedef struct {
    int bits, rank, json;
    const char *weights;  /* a safetensors file, or NULL */
    const char *pattern;  /* which of its tensors are the projections */
    const qa_method *methods[QA_PROJECT_MAX_METHODS];
    int n_methods;
} qa_project_opts;

int qa_project_sd_parse(int argc, char **argv, qa_project_opts *o, qa_error *err);
int qa_project_sd(const qa_project_opts *o, FILE *out, qa_error *err);

#endif
