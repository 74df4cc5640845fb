/* Direct convolutions in C, for benchmarks/native/compare.py: a measured sketch of what
 * compiled kernels would give cnnlab (docs/PERFORMANCE.md). Not part of the package.
 *
 * NHWC, float32, stride 1, no dilation, no groups, the input already padded. Each function
 * computes images n0 .. n1-1, so that the caller can deal batch chunks to threads.
 *
 *     Z[n, i, j, o] = b[o] + sum_{u, v, c} X[n, i + u, j + v, c] * W[u, v, c, o]
 *
 * conv16: 16 output channels, one 64-byte vector of GCC's vector extension (an AVX-512
 * register, or two AVX2 ones). A block of JB outputs of a row keeps JB such vectors of sums;
 * every tap (u, v, c) loads one vector of weights and adds x * w into each of the JB sums.
 * conv_c1: one input channel, at most 8 output channels: vectors run along the output row
 * instead (16 columns), one vector of sums per output channel.
 */
#include <string.h>

#define O 16
#define JB 10 /* outputs of a row per block: OW must be a multiple (LeNet-5's conv2: 10) */

typedef float v16 __attribute__((vector_size(64)));

void conv16(const float *x, const float *w, const float *b, float *z,
            int H, int W, int C, int KH, int KW, int n0, int n1) {
    int OH = H - KH + 1, OW = W - KW + 1;
    v16 bv;
    memcpy(&bv, b, sizeof bv);
    for (int n = n0; n < n1; n++)
        for (int i = 0; i < OH; i++)
            for (int j0 = 0; j0 + JB <= OW; j0 += JB) {
                v16 acc[JB];
                for (int jj = 0; jj < JB; jj++) acc[jj] = bv;
                for (int u = 0; u < KH; u++) {
                    const float *xr = x + (((long)n * H + i + u) * W + j0) * C;
                    for (int v = 0; v < KW; v++)
                        for (int c = 0; c < C; c++) {
                            v16 wv;
                            memcpy(&wv, w + ((u * KW + v) * C + c) * O, sizeof wv);
                            const float *xp = xr + v * C + c;
                            for (int jj = 0; jj < JB; jj++) acc[jj] += xp[jj * C] * wv;
                        }
                }
                memcpy(z + (((long)n * OH + i) * OW + j0) * O, acc, sizeof acc);
            }
}

void conv_c1(const float *x, const float *w, const float *b, float *z,
             int H, int W, int KH, int KW, int CO, int n0, int n1) {
    int OH = H - KH + 1, OW = W - KW + 1; /* OW >= 16 */
    for (int n = n0; n < n1; n++)
        for (int i = 0; i < OH; i++)
            for (int j0 = 0; j0 < OW; j0 += 16) {
                int js = j0 + 16 <= OW ? j0 : OW - 16; /* the last block overlaps */
                v16 acc[8];
                for (int o = 0; o < CO; o++)
                    for (int k = 0; k < 16; k++) acc[o][k] = b[o];
                for (int u = 0; u < KH; u++) {
                    const float *xr = x + ((long)n * H + i + u) * W + js;
                    for (int v = 0; v < KW; v++) {
                        v16 xv;
                        memcpy(&xv, xr + v, sizeof xv);
                        const float *wr = w + (u * KW + v) * CO;
                        for (int o = 0; o < CO; o++) acc[o] += xv * wr[o];
                    }
                }
                float *zr = z + (((long)n * OH + i) * OW + js) * CO;
                for (int k = 0; k < 16; k++)
                    for (int o = 0; o < CO; o++) zr[k * CO + o] = acc[o][k];
            }
}
