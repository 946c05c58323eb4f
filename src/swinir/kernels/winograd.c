/* Winograd F(2x2, 3x3) transforms for 3x3 / stride 1 / zero-pad 1 convolutions on NHWC fp32 images
 * for SwinIR's CPU inference, one source built per ISA (simd.h).
 *
 * A 3x3 conv computes 9 multiply-adds per output pixel and channel pair; Winograd's F(2x2, 3x3) computes
 * 2x2 output tiles from 4x4 input tiles with 16, i.e. 4 per pixel (2.25x fewer). The transforms below
 * only add and subtract (B and A have entries 0 and +-1), so the rounding stays close to a direct conv;
 * the 16 products are 16 GEMMs (tiles x C_in) x (C_in x C_out) that the caller runs with PyTorch.
 *
 *   input transform:  V[k][t][c] = (B^T d B)[k] for the 4x4 patch d of tile t, channel c
 *   output transform: y = A^T m A (+ bias), m[k] = M_k[t][o] (16 separate (count, out) products),
 *                     written where the 2x2 tile is inside the image
 * Tiles are numbered (b, ty, tx) raster order over ceil(H/2) x ceil(W/2) per image; a call handles tiles
 * [first, first + count) so the caller can keep V and M a few MB.
 */
#include "simd.h"

void swinir_winograd23_input(const float *x, int64_t batch, int64_t h, int64_t w, int64_t channels,
                             int64_t first, int64_t count, float *v) {
    const int64_t th = (h + 1) / 2, tw = (w + 1) / 2;
    (void)batch;
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < count; q++) {
        const int64_t p = first + q, b = p / (th * tw), r = p % (th * tw), y0 = 2 * (r / tw) - 1, x0 = 2 * (r % tw) - 1;
        for (int64_t c = 0; c < channels; c += VL) {
            const vmask m = vmask_first(channels - c);
            vf d[4][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    const int64_t yy = y0 + i, xx = x0 + j;
                    d[i][j] = (yy >= 0 && yy < h && xx >= 0 && xx < w)
                                  ? vmload(m, x + ((b * h + yy) * w + xx) * channels + c)
                                  : vzero();
                }
            vf t[4][4];
            for (int j = 0; j < 4; j++) { /* B^T d: rows */
                t[0][j] = vsub(d[0][j], d[2][j]);
                t[1][j] = vadd(d[1][j], d[2][j]);
                t[2][j] = vsub(d[2][j], d[1][j]);
                t[3][j] = vsub(d[1][j], d[3][j]);
            }
            for (int i = 0; i < 4; i++) { /* (B^T d) B: columns */
                float *o = v + ((int64_t)(4 * i) * count + q) * channels + c;
                const int64_t step = count * channels;
                vmstore(o, m, vsub(t[i][0], t[i][2]));
                vmstore(o + step, m, vadd(t[i][1], t[i][2]));
                vmstore(o + 2 * step, m, vsub(t[i][2], t[i][1]));
                vmstore(o + 3 * step, m, vsub(t[i][1], t[i][3]));
            }
        }
    }
}

void swinir_winograd23_output(const float *const *mk, const float *bias, int64_t batch, int64_t h, int64_t w,
                              int64_t channels, int64_t first, int64_t count, float *y) {
    const int64_t th = (h + 1) / 2, tw = (w + 1) / 2;
    (void)batch;
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < count; q++) {
        const int64_t p = first + q, b = p / (th * tw), r = p % (th * tw), y0 = 2 * (r / tw), x0 = 2 * (r % tw);
        for (int64_t c = 0; c < channels; c += VL) {
            const vmask m = vmask_first(channels - c);
            const vf bv = bias ? vmload(m, bias + c) : vzero();
            vf s[2][4];
            for (int j = 0; j < 4; j++) { /* A^T m: rows */
                const int64_t at = q * channels + c;
                vf m0 = vmload(m, mk[j] + at), m1 = vmload(m, mk[4 + j] + at),
                       m2 = vmload(m, mk[8 + j] + at), m3 = vmload(m, mk[12 + j] + at);
                s[0][j] = vadd(vadd(m0, m1), m2);
                s[1][j] = vsub(vsub(m1, m2), m3);
            }
            for (int i = 0; i < 2; i++) { /* (A^T m) A: columns, + bias */
                if (y0 + i >= h) break;
                float *o = y + ((b * h + y0 + i) * w + x0) * channels + c;
                vf a = vadd(vadd(vadd(s[i][0], s[i][1]), s[i][2]), bv);
                vmstore(o, m, a);
                if (x0 + 1 < w) {
                    vf e = vadd(vsub(vsub(s[i][1], s[i][2]), s[i][3]), bv);
                    vmstore(o + channels, m, e);
                }
            }
        }
    }
}
