/* A chunk's last residual add written straight into its place in the block's output, one source built per
 * ISA (simd.h): dst[row i] = y[i] + r[i], where row i is first + i, or idx[i] for a shifted block whose
 * chunk is in shifted-window order. Why: the add in place and a separate copy (or index_copy_ scatter) into
 * the output were two passes over the chunk; this is one.
 *
 * y, r: (rows, c) contiguous fp32; idx: (rows,) int64 or NULL; dst: (>= rows, c) contiguous fp32.
 * Rows are split over PyTorch's OpenMP threads when there are enough of them.
 */
#include <stdint.h>
#include <string.h>

#include "simd.h"

#define ROWS_PARALLEL_MIN 16384 /* floats below which one thread does it all */

void swinir_add_rows(const float *y, const float *r, int64_t rows, int64_t c, const int64_t *idx, int64_t first,
                     float *dst) {
    const int64_t full = c / VL * VL;
#pragma omp parallel for schedule(static) if (rows * c >= ROWS_PARALLEL_MIN)
    for (int64_t i = 0; i < rows; i++) {
        const float *a = y + i * c, *b = r + i * c;
        float *o = dst + (idx ? idx[i] : first + i) * c;
        int64_t j = 0;
        for (; j < full; j += VL) vstore(o + j, vadd(vload(a + j), vload(b + j)));
        for (; j < c; j++) o[j] = a[j] + b[j];
    }
}

/* A shifted block's chunk result put into its rows of the block's output as it is, any dtype: dst[idx[i]] =
 * src[i], row_bytes each. Why: index_copy_ moved bf16 rows of 48 channels at ~2 GB/s (builtin-x4 under bf16,
 * 0.43 ms per 8192-row chunk); a memcpy per row is a plain copy. src: (rows, row_bytes) contiguous. */
void swinir_put_rows(const char *src, int64_t rows, int64_t row_bytes, const int64_t *idx, char *dst) {
#pragma omp parallel for schedule(static) if (rows * row_bytes >= 4 * ROWS_PARALLEL_MIN)
    for (int64_t i = 0; i < rows; i++) memcpy(dst + idx[i] * row_bytes, src + i * row_bytes, (size_t)row_bytes);
}
