#include "harness/plot_gnuplot.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>

#ifndef QA_PLOTS_SOURCE_DIR
#define QA_PLOTS_SOURCE_DIR "plots"
#endif

void qa_plot_arg(plot_args *a, const char *fmt, ...) {
    if (a->n == PLOT_MAX_ARGS) { a->overflow = 1; return; }
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(a->text[a->n], sizeof a->text[0], fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof a->text[0]) a->overflow = 1;
    a->n++;
}

static int has_template(const char *dir, const char *kind) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.gp", dir, kind);
    return qa_file_exists(path);
}

int qa_plot_templates_dir(const char *kind, char *dir, size_t len, qa_error *err) {
    const char *env = getenv("QA_PLOTS_DIR");
    if (env && env[0]) {
        if (!has_template(env, kind))
            return qa_fail(err, QA_ERR_INPUT, "plot: no template %s.gp in QA_PLOTS_DIR=%s", kind, env);
        snprintf(dir, len, "%s", env);
        return QA_OK;
    }
    const char *candidates[2] = {QA_PLOTS_SOURCE_DIR, "plots"};
    for (int k = 0; k < 2; k++)
        if (has_template(candidates[k], kind)) {
            snprintf(dir, len, "%s", candidates[k]);
            return QA_OK;
        }
    return qa_fail(err, QA_ERR_INPUT,
                   "plot: gnuplot template %s.gp not found in %s nor in ./plots; set QA_PLOTS_DIR to the plots/ folder "
                   "of the qadapt-bench sources", kind, QA_PLOTS_SOURCE_DIR);
}

/* a gnuplot single-quoted string: a quote inside is written twice */
static void put_quoted(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

static int write_call(const char *kind, const char *out, const plot_args *a, const char *script, qa_error *err) {
    FILE *f = fopen(script, "w");
    if (!f) return qa_fail(err, QA_ERR_RUN, "plot: cannot write %s: %s", script, strerror(errno));
    fprintf(f, "# Drawn by `qadapt plot` with the template %s.gp of the plots/ folder from OUT.dat (OUT: the\n"
               "# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE\n"
               "call '%s.gp' ", kind, kind);
    put_quoted(f, out);
    for (int k = 0; k < a->n; k++) {
        fputc(' ', f);
        put_quoted(f, a->text[k]);
    }
    fputc('\n', f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return qa_fail(err, QA_ERR_RUN, "plot: cannot write %s: %s", script, strerror(errno));
    return QA_OK;
}

int qa_plot_draw(const char *kind, const char *out, const plot_args *a, qa_error *err) {
    QA_ASSERT(!a->overflow);
    char dir[4096], script[4200];
    int rc = qa_plot_templates_dir(kind, dir, sizeof dir, err);
    if (rc) return rc;
    snprintf(script, sizeof script, "%s.gp", out);
    rc = write_call(kind, out, a, script, err);
    return rc ? rc : qa_plot_run_script(script, NULL, err);
}

/* gnuplot's messages, one line, for the error of a failed script */
static void read_messages(FILE *p, char *out, size_t len) {
    char line[512];
    out[0] = 0;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        size_t used = strlen(out);
        if (line[0] && used + strlen(line) + 3 < len) snprintf(out + used, len - used, "%s%s", used ? " | " : "", line);
    }
}

int qa_plot_run_script(const char *script, const char *formats, qa_error *err) {
    char dir[4096];
    int rc = qa_plot_templates_dir("terminal", dir, sizeof dir, err);
    if (rc) return rc;
    if (strchr(script, '\'') || strchr(dir, '\''))
        return qa_fail(err, QA_ERR_INPUT, "plot: path with a quote character: %s", strchr(script, '\'') ? script : dir);
    if (formats && strspn(formats, "abcdefghijklmnopqrstuvwxyz ") != strlen(formats))
        return qa_fail(err, QA_ERR_INPUT, "plot: formats are lower-case words: '%s'", formats);
    char cmd[8800], fmt_opt[128] = "";
    if (formats) snprintf(fmt_opt, sizeof fmt_opt, "-e \"formats='%s'\" ", formats);
    snprintf(cmd, sizeof cmd, "GNUPLOT_LIB='%s' gnuplot -d %s'%s' 2>&1", dir, fmt_opt, script);
    FILE *p = popen(cmd, "r");
    if (!p) return qa_fail(err, QA_ERR_RUN, "plot: cannot start gnuplot: %s", strerror(errno));
    char messages[700];
    read_messages(p, messages, sizeof messages);
    int st = pclose(p);
    if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) return QA_OK;
    if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 127)
        return qa_fail(err, QA_ERR_RUN, "plot: gnuplot not found (apt-get install gnuplot-nox)");
    return qa_fail(err, QA_ERR_RUN, "plot: gnuplot failed on %s: %s", script, messages);
}

FILE *qa_plot_open_dat(const char *out, qa_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s.dat", out);
    FILE *f = fopen(path, "w");
    if (!f) qa_fail(err, QA_ERR_RUN, "plot: cannot write %s: %s", path, strerror(errno));
    return f;
}

int qa_plot_close_dat(FILE *f, const char *out, qa_error *err) {
    int bad = ferror(f);
    int saved = errno;
    if (fclose(f) != 0) { bad = 1; saved = errno; }
    if (!bad) return QA_OK;
    return qa_fail(err, QA_ERR_RUN, "plot: cannot write %s.dat: %s", out, strerror(saved));
}
