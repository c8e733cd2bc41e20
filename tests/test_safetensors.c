/* The safetensors reader and project-sd on real weights. Every file is written here: a valid one
 * with F32, F16 and BF16 tensors read back value for value, and one malformed file per way a
 * header can be wrong, each refused with an input error that says what is wrong. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "harness/bench.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/safetensors.h"

static char dir[128];
static char path[256];

static void setup(void) { make_tmpdir(dir, sizeof dir, "safetensors"); }
static void teardown(void) { rm_rf_dir(dir); }

TestSuite(safetensors, .init = setup, .fini = teardown);

/* A file: the 8-byte little-endian header length (header_len, normally strlen(header)), the
 * header and data_len bytes of data. */
static const char *write_st(const char *name, const char *header, uint64_t header_len, const void *data, size_t data_len) {
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(header_len >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (data_len) fwrite(data, 1, data_len, f);
    fclose(f);
    return path;
}

static const char *write_simple(const char *name, const char *header, size_t data_len) {
    static unsigned char zeros[4096];
    cr_assert(data_len <= sizeof zeros);
    return write_st(name, header, strlen(header), zeros, data_len);
}

static uint16_t f16_bits(float x) { /* exact for the values used below */
    _Float16 h = (_Float16)x;
    uint16_t b;
    memcpy(&b, &h, sizeof b);
    return b;
}

Test(safetensors, half_and_bfloat16_conversions_are_exact) {
    int bad = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        _Float16 h;
        uint16_t bits = (uint16_t)b;
        memcpy(&h, &bits, sizeof h);
        float want = (float)h, got = qa_half_to_float(bits);
        int same = isnan(want) ? isnan(got) : memcmp(&want, &got, sizeof want) == 0;
        if (!same && bad++ < 5) cr_expect_fail("half %#06x: got %g, want %g", b, (double)got, (double)want);
    }
    cr_expect_eq(bad, 0, "%d half values convert wrongly", bad);
    cr_expect_eq(qa_bf16_to_float(0x3fc0), 1.5f);
    cr_expect_eq(qa_bf16_to_float(0xc000), -2.0f);
    cr_expect(isinf(qa_bf16_to_float(0x7f80)));
}

Test(safetensors, reads_f32_f16_bf16_tensors) {
    /* a [2,2] F32, a [3] F16 (with a subnormal) and a [2] BF16, then an I64 nobody reads */
    unsigned char data[16 + 6 + 4 + 8];
    float a[4] = {1.0f, -2.5f, 3.25f, 1e-3f};
    memcpy(data, a, 16);
    uint16_t h[3] = {f16_bits(0.5f), f16_bits(-65504.0f), 0x0001 /* 2^-24 */};
    for (int i = 0; i < 3; i++) { data[16 + 2 * i] = (unsigned char)h[i]; data[17 + 2 * i] = (unsigned char)(h[i] >> 8); }
    uint16_t bf[2] = {0x3fc0, 0xc000};
    for (int i = 0; i < 2; i++) { data[22 + 2 * i] = (unsigned char)bf[i]; data[23 + 2 * i] = (unsigned char)(bf[i] >> 8); }
    memset(data + 26, 7, 8);
    const char *hdr = "{\"__metadata__\": {\"format\": \"pt\"},"
                      "\"a\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]},"
                      "\"h\": {\"dtype\": \"F16\", \"shape\": [3], \"data_offsets\": [16, 22]},"
                      "\"b\": {\"dtype\": \"BF16\", \"shape\": [2], \"data_offsets\": [22, 26]},"
                      "\"ids\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [26, 34]}}";
    qa_safetensors st;
    qa_error err = {0, ""};
    cr_assert_eq(qa_safetensors_open(write_st("ok.safetensors", hdr, strlen(hdr), data, sizeof data), &st, &err), 0, "%s",
                 err.msg);
    cr_expect_eq(st.n_tensors, 4);
    float out[4];
    const qa_st_tensor *t = qa_safetensors_find(&st, "a");
    cr_assert_not_null(t);
    cr_expect_eq(qa_st_numel(t), 4);
    cr_assert_eq(qa_safetensors_read_f32(&st, t, out, &err), 0, "%s", err.msg);
    cr_expect_eq(memcmp(out, a, sizeof a), 0);
    cr_assert_eq(qa_safetensors_read_f32(&st, qa_safetensors_find(&st, "h"), out, &err), 0, "%s", err.msg);
    cr_expect(out[0] == 0.5f && out[1] == -65504.0f && out[2] == ldexpf(1.0f, -24), "%g %g %g", (double)out[0],
              (double)out[1], (double)out[2]);
    cr_assert_eq(qa_safetensors_read_f32(&st, qa_safetensors_find(&st, "b"), out, &err), 0, "%s", err.msg);
    cr_expect(out[0] == 1.5f && out[1] == -2.0f);
    cr_expect_eq(qa_safetensors_read_f32(&st, qa_safetensors_find(&st, "ids"), out, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "I64") != NULL, "%s", err.msg);
    cr_expect_null(qa_safetensors_find(&st, "__metadata__"));
    qa_safetensors_close(&st);
}

/* Open must fail with an input error whose message contains `says`. */
static void expect_refused(const char *file, const char *says) {
    qa_safetensors st;
    qa_error err = {0, ""};
    int rc = qa_safetensors_open(file, &st, &err);
    cr_expect_eq(rc, QA_ERR_INPUT, "%s: rc %d (%s)", file, rc, err.msg);
    cr_expect(strstr(err.msg, says) != NULL, "message '%s' should say '%s'", err.msg, says);
}

Test(safetensors, malformed_headers_are_input_errors) {
    const char *ok_entry = "\"w\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}";
    char hdr[512];
    snprintf(hdr, sizeof hdr, "{%s", ok_entry); /* unterminated JSON */
    expect_refused(write_simple("badjson.safetensors", hdr, 16), "not valid JSON");
    expect_refused(write_simple("array.safetensors", "[1, 2, 3]", 0), "not a JSON object");
    snprintf(hdr, sizeof hdr, "{%s}", ok_entry);
    expect_refused(write_st("longlen.safetensors", hdr, 1u << 20, NULL, 0), "past the end of the file");
    expect_refused(write_st("short.safetensors", "", 0, NULL, 0), "empty header");
    FILE *f = fopen(path, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    expect_refused(path, "shorter than");
    expect_refused(write_simple("nodtype.safetensors", "{\"w\": {\"shape\": [2, 2], \"data_offsets\": [0, 16]}}", 16),
                   "needs \"dtype\"");
    expect_refused(write_simple("nooffsets.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 2]}}", 16),
                   "data_offsets");
    expect_refused(write_simple("noshape.safetensors", "{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 16]}}", 16),
                   "\"shape\"");
    expect_refused(write_simple("unknown.safetensors", "{\"w\": {\"dtype\": \"Q4\", \"shape\": [2], \"data_offsets\": [0, 1]}}", 1),
                   "unknown dtype 'Q4'");
    expect_refused(write_simple("notentry.safetensors", "{\"w\": 3}", 0), "not a JSON object");
}

Test(safetensors, offsets_that_do_not_fit_are_input_errors) {
    /* F16 [2, 2] is 8 bytes, not 16: a dtype mismatch */
    expect_refused(write_simple("dtype.safetensors", "{\"w\": {\"dtype\": \"F16\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}", 16),
                   "dtype or shape mismatch");
    expect_refused(write_simple("shape.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [3, 2], \"data_offsets\": [0, 16]}}", 16),
                   "dtype or shape mismatch");
    expect_refused(write_simple("past.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}", 12),
                   "past the end of the file");
    expect_refused(write_simple("reversed.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 4]}}", 16),
                   "begin <= end");
    expect_refused(write_simple("negshape.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 16),
                   "integers >= 0");
    expect_refused(write_simple("overlap.safetensors",
                                "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
                                " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [12, 20]}}", 24),
                   "overlap");
    expect_refused(write_simple("dup.safetensors",
                                "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                                " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8),
                   "not valid JSON");
}

/* Two attention projections (F16, one with a bias), a feed-forward weight the default pattern
 * must skip, written as an SD checkpoint would hold them. */
static const char *write_checkpoint(float *wq, float *wo, int d, int ctx) {
    size_t nq = (size_t)d * ctx, no = (size_t)d * d;
    size_t bytes = 2 * (nq + no + d) + 4 * (size_t)d * d;
    unsigned char *data = qa_alloc(bytes);
    trng r = trng_new(3);
    for (size_t i = 0; i < nq; i++) wq[i] = (float)(_Float16)(0.05 * trng_normal(&r));
    for (size_t i = 0; i < no; i++) wo[i] = (float)(_Float16)(0.05 * trng_normal(&r));
    size_t off = 0;
    for (size_t i = 0; i < nq; i++, off += 2) { uint16_t h = f16_bits(wq[i]); data[off] = (unsigned char)h; data[off + 1] = (unsigned char)(h >> 8); }
    for (size_t i = 0; i < no; i++, off += 2) { uint16_t h = f16_bits(wo[i]); data[off] = (unsigned char)h; data[off + 1] = (unsigned char)(h >> 8); }
    for (int i = 0; i < d; i++, off += 2) { uint16_t h = f16_bits(0.01f * (float)i); data[off] = (unsigned char)h; data[off + 1] = (unsigned char)(h >> 8); }
    char hdr[1024];
    size_t a = 2 * nq, b = a + 2 * no, c = b + 2 * (size_t)d;
    snprintf(hdr, sizeof hdr,
             "{\"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight\": "
             "{\"dtype\": \"F16\", \"shape\": [%d, %d], \"data_offsets\": [0, %zu]},"
             "\"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.weight\": "
             "{\"dtype\": \"F16\", \"shape\": [%d, %d], \"data_offsets\": [%zu, %zu]},"
             "\"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.bias\": "
             "{\"dtype\": \"F16\", \"shape\": [%d], \"data_offsets\": [%zu, %zu]},"
             "\"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.ff.net.2.weight\": "
             "{\"dtype\": \"F32\", \"shape\": [%d, %d], \"data_offsets\": [%zu, %zu]}}",
             d, ctx, a, d, d, a, b, d, b, c, d, d, c, bytes);
    const char *p = write_st("sd.safetensors", hdr, strlen(hdr), data, bytes);
    qa_free(data);
    return p;
}

static double json_number(const char *line, const char *key) {
    const char *p = strstr(line, key);
    cr_assert_not_null(p, "no %s in %s", key, line);
    return atof(p + strlen(key) + 3);
}

/* project-sd on the file: the projections the pattern selects, and quantizer figures that equal
 * those computed here from the same weights (LoRA deploys PTQ(W) at B = 0, so its error is the
 * section-0 quantizer's on W). */
Test(safetensors, project_sd_on_checkpoint_weights) {
    enum { D = 32, CTX = 48 };
    float wq[D * CTX], wo[D * D];
    const char *file = write_checkpoint(wq, wo, D, CTX);
    char *argv[] = {"--weights", (char *)file, "--methods", "lora,intlora-mul", "--bits", "4", "--json"};
    qa_project_opts o;
    qa_error err = {0, ""};
    cr_assert_eq(qa_project_sd_parse(7, argv, &o, &err), 0, "%s", err.msg);
    char buf[8192] = "";
    FILE *mem = fmemopen(buf, sizeof buf, "w");
    cr_assert_eq(qa_project_sd(&o, mem, &err), 0, "%s", err.msg);
    fclose(mem);
    const char *lora = strstr(buf, "\"method\": \"lora\""), *intlora = strstr(buf, "\"method\": \"intlora-mul\"");
    cr_assert(lora && intlora, "%s", buf);
    /* the expected error: sqrt(sum (Q(W) - W)^2 / sum W^2) over both layers */
    double e2 = 0, w2 = 0;
    const float *ws[2] = {wq, wo};
    int ins[2] = {CTX, D};
    for (int l = 0; l < 2; l++) {
        float dl[D], z[D], wf[D * CTX];
        qa_quant_search_rows(ws[l], D, ins[l], 4, dl, z);
        qa_quant_fake_rows(wf, ws[l], D, ins[l], 4, dl, z);
        for (int i = 0; i < D * ins[l]; i++) { e2 += ((double)wf[i] - ws[l][i]) * (wf[i] - ws[l][i]); w2 += (double)ws[l][i] * ws[l][i]; }
    }
    double want = sqrt(e2 / w2), got = json_number(lora, "deployed_rel_error");
    cr_expect(fabs(got - want) <= 1e-5 * want + 1e-6, "lora deployed error %g, want %g", got, want);
    cr_expect(want > 0.01 && want < 0.3, "4-bit error %g", want);
    /* IntLoRA's W_int = 0 share, pooled over the two layers, is the plugin's own on the same
     * weights in memory (project-sd's configuration: rank 4, W4, its rng seed 7 per layer) */
    const qa_method *m = qa_method_find("intlora-mul");
    double num = 0, den = 0;
    const char *names[2] = {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
                            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.weight"};
    for (int l = 0; l < 2; l++) {
        qa_method_cfg cfg = {.w_bits = 4, .rank = 4, .lora_scale = 1.0f, .base_lr = 1e-3f, .sampling_steps = 20};
        float bias[D] = {0};
        qa_rng *r = qa_rng_new(7);
        qa_layer_init li = {ins[l], D, ws[l], bias, &cfg, r, names[l], NULL, NULL};
        void *st = qa_alloc(m->state_size);
        cr_assert_eq(m->init(st, &li, &err), 0, "%s", err.msg);
        qa_deployed d;
        cr_assert_eq(m->merge(st, &d, &err), 0, "%s", err.msg);
        cr_assert_str_eq(d.stat_name[0], "w_int_zero_share");
        num += d.stat_num[0];
        den += d.stat_den[0];
        qa_deployed_free(&d);
        m->destroy(st);
        qa_free(st);
        qa_rng_free(r);
    }
    double share = json_number(intlora, "w_int_zero_share");
    cr_expect(fabs(share - num / den) < 1e-6, "W_int = 0 share %g, the plugin's %g", share, num / den);
    cr_expect(share > 0.0 && share < 1.0, "W_int = 0 share %g", share);
    cr_expect(json_number(intlora, "frozen_mb") > 0);
    cr_expect_null(strstr(buf, "ff.net"), "the feed-forward weight is not selected");
    /* the selection: the default pattern takes attn2.to_k and attn1.to_out.0 (2 layers); a
     * pattern that matches nothing is an input error */
    char *argv2[] = {"--weights", (char *)file, "--pattern", "attn3", "--methods", "lora"};
    cr_assert_eq(qa_project_sd_parse(6, argv2, &o, &err), 0, "%s", err.msg);
    mem = fmemopen(buf, sizeof buf, "w");
    cr_expect_eq(qa_project_sd(&o, mem, &err), QA_ERR_INPUT);
    fclose(mem);
    cr_expect(strstr(err.msg, "no tensor matches") != NULL, "%s", err.msg);
    char *argv3[] = {"--pattern", "attn[", "--methods", "lora"};
    cr_expect_eq(qa_project_sd_parse(4, argv3, &o, &err), QA_ERR_INPUT);
}

Test(safetensors, project_sd_default_methods_are_the_registry) {
    qa_project_opts o;
    qa_error err = {0, ""};
    cr_assert_eq(qa_project_sd_parse(0, NULL, &o, &err), 0, "%s", err.msg);
    int n = 0;
    for (const qa_method *const *m = qa_methods(); *m; m++) {
        cr_expect_eq(o.methods[n], *m);
        n++;
    }
    cr_expect_eq(o.n_methods, n);
}
