#include "harness/artifact.h"

#include <string.h>
#include <sys/stat.h>

#include "harness/quant.h"
#include "harness/results.h"

int qa_artifact_signed_bits(const int32_t *v, size_t n) {
    int32_t lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) { lo = v[i] < lo ? v[i] : lo; hi = v[i] > hi ? v[i] : hi; }
    int bits = 1;
    while (bits < 32 && (hi > (int32_t)((1u << (bits - 1)) - 1) || lo < -(int32_t)(1u << (bits - 1)))) bits++;
    return bits;
}

static int write_layer(qa_h5 *f, const char *grp, const qa_deployed *d, int ptq_bits, qa_artifact_size *size, qa_error *err) {
    char p[400];
    const char *encoding;
    int rc = QA_OK;
    if (d->n_stored > 0) {
        encoding = "method";
        for (int t = 0; t < d->n_stored && !rc; t++) {
            const qa_stored_tensor *st = &d->stored[t];
            snprintf(p, sizeof p, "%s/%s", grp, st->name);
            rc = qa_h5_write_packed(f, p, st->is_float ? (const void *)st->f32 : (const void *)st->i32, st->rows, st->cols, st->bits,
                                 st->is_float, st->is_signed, err);
            if (!rc) size->payload_bytes += qa_h5_storage_bytes(f, p);
        }
    } else if (d->w_int) {
        encoding = "int_codes";
        int bits = qa_artifact_signed_bits(d->w_int, (size_t)d->in * d->out);
        snprintf(p, sizeof p, "%s/codes", grp);
        rc = qa_h5_write_packed(f, p, d->w_int, d->out, d->in, bits, 0, 1, err);
        if (!rc) size->payload_bytes += qa_h5_storage_bytes(f, p);
        snprintf(p, sizeof p, "%s/row_scale", grp);
        if (!rc) rc = qa_h5_write_packed(f, p, d->row_scale, d->out, 1, 32, 1, 0, err);
        if (!rc) size->payload_bytes += qa_h5_storage_bytes(f, p);
    } else if (d->w_fp && ptq_bits > 0) {
        encoding = "ptq_codes";
        float *delta = qa_alloc(sizeof(float) * d->out), *zero = qa_alloc(sizeof(float) * d->out);
        int32_t *codes = qa_alloc(sizeof(int32_t) * (size_t)d->in * d->out);
        qa_quant_search_rows(d->w_fp, d->out, d->in, ptq_bits, delta, zero);
        qa_quant_codes_rows(codes, d->w_fp, d->out, d->in, ptq_bits, delta, zero);
        for (int o = 0; o < d->out; o++) /* stored unsigned: q = code + z in 0 .. 2^N - 1 (z is integral) */
            for (int i = 0; i < d->in; i++) codes[(size_t)o * d->in + i] += (int32_t)zero[o];
        snprintf(p, sizeof p, "%s/codes", grp);
        rc = qa_h5_write_packed(f, p, codes, d->out, d->in, ptq_bits, 0, 0, err);
        if (!rc) size->payload_bytes += qa_h5_storage_bytes(f, p);
        snprintf(p, sizeof p, "%s/delta", grp);
        if (!rc) rc = qa_h5_write_packed(f, p, delta, d->out, 1, 32, 1, 0, err);
        if (!rc) size->payload_bytes += qa_h5_storage_bytes(f, p);
        snprintf(p, sizeof p, "%s/zero", grp);
        if (!rc) rc = qa_h5_write_packed(f, p, zero, d->out, 1, 32, 1, 0, err);
        if (!rc) size->payload_bytes += qa_h5_storage_bytes(f, p);
        qa_free(delta); qa_free(zero); qa_free(codes);
    } else if (d->w_fp) {
        encoding = "float32";
        size->float_layers++;
        snprintf(p, sizeof p, "%s/weights", grp);
        rc = qa_h5_write_packed(f, p, d->w_fp, d->out, d->in, 32, 1, 0, err);
        if (!rc) size->payload_bytes += qa_h5_storage_bytes(f, p);
    } else {
        return qa_fail(err, QA_ERR_RUN, "artifact: %s: the deployed layer has no weights to store", grp);
    }
    if (!rc) rc = qa_h5_attr_set_str(f, grp, "encoding", encoding, err);
    if (!rc) rc = qa_h5_attr_set_f64(f, grp, "in", d->in, err);
    if (!rc) rc = qa_h5_attr_set_f64(f, grp, "out", d->out, err);
    size->weights += (double)d->in * d->out;
    return rc;
}

int qa_artifact_write(const char *path, const qa_dit *m, const qa_deployed *dep, int ptq_bits, qa_artifact_size *size,
                   qa_error *err) {
    memset(size, 0, sizeof *size);
    qa_h5 *f;
    int rc = qa_h5_create_compact(path, &f, err);
    if (rc) return rc;
    int k = 0;
    for (int i = 0; i < m->n_lin && !rc; i++) {
        if (!m->lin[i].method) continue;
        char grp[200];
        snprintf(grp, sizeof grp, "/layers/%s", m->lin[i].name);
        rc = write_layer(f, grp, &dep[k++], ptq_bits, size, err);
    }
    qa_error cerr;
    int crc = qa_h5_close(f, &cerr);
    if (!rc && crc) { *err = cerr; rc = crc; }
    struct stat st;
    if (!rc && stat(path, &st) == 0) size->file_bytes = (double)st.st_size;
    return rc;
}
