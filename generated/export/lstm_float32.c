/* lstm_float32.c: exported by symgate 0.1.0 from templates/export.c.jinja (which extends
 * kernel.c.jinja). Do not edit: export the cell again.
 *
 * The recurrent cell lstm in float, as a standalone C99 library: libm only, no BLAS,
 * no allocation, no global state. lstm_float32.h documents every function and buffer.
 *
 *   cell lstm
 *   input x: D
 *   state h: H, c: H
 *   i = sigmoid(b_i + U_i @ h + W_i @ x)
 *   f = sigmoid(b_f + U_f @ h + W_f @ x)
 *   g = tanh(b_g + U_g @ h + W_g @ x)
 *   o = sigmoid(b_o + U_o @ h + W_o @ x)
 *   c' = c*f + g*i
 *   h' = o*tanh(c')
 *
 *   backward step of lstm, given δc', δh' (from later steps and the loss):
 *     τ1 = tanh(c')
 *     δc'_tot = o*δh'*(1 - τ1**2) + δc'
 *     δo = δh'*τ1
 *     δo_pre = o*δo*(1 - o)
 *     δg = i*δc'_tot
 *     δg_pre = δg*(1 - g**2)
 *     δf = c*δc'_tot
 *     δf_pre = f*δf*(1 - f)
 *     δi = g*δc'_tot
 *     δi_pre = i*δi*(1 - i)
 *     δh = U_fᵀ @ δf_pre + U_gᵀ @ δg_pre + U_iᵀ @ δi_pre + U_oᵀ @ δo_pre
 *     δc = f*δc'_tot
 *     δx = W_fᵀ @ δf_pre + W_gᵀ @ δg_pre + W_iᵀ @ δi_pre + W_oᵀ @ δo_pre
 *   parameter gradients (summed over batch and time):
 *     δW_i += δi_pre ⊗ x
 *     δU_i += δi_pre ⊗ h
 *     δb_i += δi_pre
 *     δW_f += δf_pre ⊗ x
 *     δU_f += δf_pre ⊗ h
 *     δb_f += δf_pre
 *     δW_g += δg_pre ⊗ x
 *     δU_g += δg_pre ⊗ h
 *     δb_g += δg_pre
 *     δW_o += δo_pre ⊗ x
 *     δU_o += δo_pre ⊗ h
 *     δb_o += δo_pre
 *
 * Kept by the forward pass for the backward pass: i (H), f (H), g (H), o (H).
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

/* The number type of this file, for the helpers every generated file shares (symgate_runtime.h,
 * shipped with symgate): activations, reductions, matrix products. */
#define SG_REAL float
#define SG_MATH_SUFFIX f
#define SG_LITERAL_SUFFIX F
#include "symgate_runtime.h"

#include "lstm_float32.h"

size_t sg_lstm_float32_forward_work(int T, int B, int D, int H)
{
    return (4 * (size_t)H) * (size_t)B + (4 * (size_t)H) * (size_t)T * B + (size_t)H * (4 * (size_t)H) + (size_t)D * (4 * (size_t)H);
}

/* Forward pass over T steps.
 *   batch_sizes (T): samples run at each step, longest first, sequences packed; NULL: B each step
 *   x_seq (T, B, D): input x at every step
 *   h_init (B, H): initial state h
 *   c_init (B, H): initial state c
 *   W_i (H, D): parameter W_i
 *   U_i (H, H): parameter U_i
 *   b_i (H): parameter b_i
 *   W_f (H, D): parameter W_f
 *   U_f (H, H): parameter U_f
 *   b_f (H): parameter b_f
 *   W_g (H, D): parameter W_g
 *   U_g (H, H): parameter U_g
 *   b_g (H): parameter b_g
 *   W_o (H, D): parameter W_o
 *   U_o (H, H): parameter U_o
 *   b_o (H): parameter b_o
 *   h_seq (T, B, H): state h after every step
 *   c_seq (T, B, H): state c after every step
 *   i_tape (T, B, H): i at every step, kept for the backward pass
 *   f_tape (T, B, H): f at every step, kept for the backward pass
 *   g_tape (T, B, H): g at every step, kept for the backward pass
 *   o_tape (T, B, H): o at every step, kept for the backward pass
 */
void sg_lstm_float32_forward(int T, int B, int D, int H, const int *batch_sizes,
    const float *x_seq,
    const float *h_init,
    const float *c_init,
    const float *W_i,
    const float *U_i,
    const float *b_i,
    const float *W_f,
    const float *U_f,
    const float *b_f,
    const float *W_g,
    const float *U_g,
    const float *b_g,
    const float *W_o,
    const float *U_o,
    const float *b_o,
    float *h_seq,
    float *c_seq,
    float *i_tape,
    float *f_tape,
    float *g_tape,
    float *o_tape,
    float *work)
{
    const int all_rows = sg_all_rows(T, B, batch_sizes);
    const int h_products_width = 4 * H;
    const int x_products_width = 4 * H;
    /* U_i@h, U_f@h, U_g@h, U_o@h side by side */
    float *const h_products = work;
    /* W_i@x, W_f@x, W_g@x, W_o@x side by side, at every step */
    float *const x_products = h_products + (size_t)B * h_products_width;
    /* (U_i, U_f, U_g, U_o)ᵀ side by side, for every step */
    float *const h_weights = x_products + (size_t)T * B * x_products_width;
    /* (W_i, W_f, W_g, W_o) stacked, for all steps */
    float *const x_weights = h_weights + (size_t)H * h_products_width;
    /* (W_i, W_f, W_g, W_o) stacked */
    memcpy(x_weights, W_i, sizeof(float) * (size_t)H * D);
    memcpy(x_weights + (size_t)H * D, W_f, sizeof(float) * (size_t)H * D);
    memcpy(x_weights + (size_t)(2 * H) * D, W_g, sizeof(float) * (size_t)H * D);
    memcpy(x_weights + (size_t)(3 * H) * D, W_o, sizeof(float) * (size_t)H * D);
    /* (U_i, U_f, U_g, U_o)ᵀ side by side */
    sg_pack_t(H, H, U_i, h_weights, h_products_width);
    sg_pack_t(H, H, U_f, h_weights + H, h_products_width);
    sg_pack_t(H, H, U_g, h_weights + 2 * H, h_products_width);
    sg_pack_t(H, H, U_o, h_weights + 3 * H, h_products_width);
    /* (W_i@x, W_f@x, W_g@x, W_o@x) = (W_i, W_f, W_g, W_o) @ x, all steps */
    sg_gemm_nt(all_rows, x_products_width, D, x_seq, D, x_weights, D, x_products, x_products_width, 0);
    size_t step_row = 0;
    for (int t = 0; t < T; ++t) {
        const int step_batch = sg_step_batch(batch_sizes, t, B);
        const size_t previous_row = sg_previous_row(step_row, batch_sizes, t, B);
        float *const U_i_h_row = h_products;
        float *const U_f_h_row = h_products + H;
        float *const U_g_h_row = h_products + 2 * H;
        float *const U_o_h_row = h_products + 3 * H;
        float *const W_i_x_row = x_products + step_row * x_products_width;
        float *const W_f_x_row = x_products + step_row * x_products_width + H;
        float *const W_g_x_row = x_products + step_row * x_products_width + 2 * H;
        float *const W_o_x_row = x_products + step_row * x_products_width + 3 * H;
        float *const c_next_row = c_seq + step_row * H;
        float *const h_next_row = h_seq + step_row * H;
        float *const i_row = i_tape + step_row * H;
        float *const f_row = f_tape + step_row * H;
        float *const g_row = g_tape + step_row * H;
        float *const o_row = o_tape + step_row * H;
        const float *const h_row = t == 0 ? h_init : h_seq + previous_row * H;
        const float *const c_row = t == 0 ? c_init : c_seq + previous_row * H;
        /* (U_i@h, U_f@h, U_g@h, U_o@h) = (U_i, U_f, U_g, U_o) @ h */
        sg_gemm_nn(step_batch, h_products_width, H, h_row, H, h_weights, h_products_width, U_i_h_row, h_products_width, 0);

        /* i, f, g, o, c', h' */
        for (int sample = 0; sample < step_batch; ++sample) {
            const float *const U_f_h_sample = U_f_h_row + (size_t)sample * h_products_width;
            const float *const U_g_h_sample = U_g_h_row + (size_t)sample * h_products_width;
            const float *const U_i_h_sample = U_i_h_row + (size_t)sample * h_products_width;
            const float *const U_o_h_sample = U_o_h_row + (size_t)sample * h_products_width;
            const float *const W_f_x_sample = W_f_x_row + (size_t)sample * x_products_width;
            const float *const W_g_x_sample = W_g_x_row + (size_t)sample * x_products_width;
            const float *const W_i_x_sample = W_i_x_row + (size_t)sample * x_products_width;
            const float *const W_o_x_sample = W_o_x_row + (size_t)sample * x_products_width;
            const float *const c_sample = c_row + (size_t)sample * H;
            float *const i_sample = i_row + (size_t)sample * H;
            float *const f_sample = f_row + (size_t)sample * H;
            float *const g_sample = g_row + (size_t)sample * H;
            float *const o_sample = o_row + (size_t)sample * H;
            float *const c_next_sample = c_next_row + (size_t)sample * H;
            float *const h_next_sample = h_next_row + (size_t)sample * H;
            SG_UNITS_INDEPENDENT
            for (int unit = 0; unit < H; ++unit) {
                const float U_f_h = U_f_h_sample[unit];
                const float U_g_h = U_g_h_sample[unit];
                const float U_i_h = U_i_h_sample[unit];
                const float U_o_h = U_o_h_sample[unit];
                const float W_f_x = W_f_x_sample[unit];
                const float W_g_x = W_g_x_sample[unit];
                const float W_i_x = W_i_x_sample[unit];
                const float W_o_x = W_o_x_sample[unit];
                const float c = c_sample[unit];
                const float i = sg_sigmoid(U_i_h + W_i_x + b_i[unit]);
                const float f = sg_sigmoid(U_f_h + W_f_x + b_f[unit]);
                const float g = tanhf(U_g_h + W_g_x + b_g[unit]);
                const float o = sg_sigmoid(U_o_h + W_o_x + b_o[unit]);
                const float c_next = c*f + g*i;
                const float h_next = o*tanhf(c_next);
                i_sample[unit] = i;
                f_sample[unit] = f;
                g_sample[unit] = g;
                o_sample[unit] = o;
                c_next_sample[unit] = c_next;
                h_next_sample[unit] = h_next;
            }
        }
        step_row += (size_t)step_batch;
    }
}

size_t sg_lstm_float32_backward_work(int T, int B, int D, int H)
{
    return (4 * (size_t)H) * (size_t)T * B + (size_t)H * (4 * (size_t)H) + (size_t)D * (4 * (size_t)H) + (size_t)H * (4 * (size_t)H) + (size_t)D * (4 * (size_t)H) + (size_t)B * H + (size_t)B * H;
}

/* Backward pass over T steps.
 *   batch_sizes (T): samples run at each step, longest first, sequences packed; NULL: B each step
 *   x_seq (T, B, D): input x at every step
 *   h_init (B, H): initial state h
 *   c_init (B, H): initial state c
 *   W_i (H, D): parameter W_i
 *   U_i (H, H): parameter U_i
 *   b_i (H): parameter b_i
 *   W_f (H, D): parameter W_f
 *   U_f (H, H): parameter U_f
 *   b_f (H): parameter b_f
 *   W_g (H, D): parameter W_g
 *   U_g (H, H): parameter U_g
 *   b_g (H): parameter b_g
 *   W_o (H, D): parameter W_o
 *   U_o (H, H): parameter U_o
 *   b_o (H): parameter b_o
 *   h_seq (T, B, H): state h after every step
 *   c_seq (T, B, H): state c after every step
 *   i_tape (T, B, H): i at every step, kept for the backward pass
 *   f_tape (T, B, H): f at every step, kept for the backward pass
 *   g_tape (T, B, H): g at every step, kept for the backward pass
 *   o_tape (T, B, H): o at every step, kept for the backward pass
 *   grad_h_seq (T, B, H): loss gradient with respect to h at every step (NULL: none)
 *   grad_c_seq (T, B, H): loss gradient with respect to c at every step (NULL: none)
 *   grad_x_seq (T, B, D): result: gradient with respect to input x
 *   grad_h_init (B, H): in: gradient with respect to the final h; out: with respect to the initial h
 *   grad_c_init (B, H): in: gradient with respect to the final c; out: with respect to the initial c
 *   grad_W_i (H, D): result: gradient with respect to W_i
 *   grad_U_i (H, H): result: gradient with respect to U_i
 *   grad_b_i (H): result: gradient with respect to b_i
 *   grad_W_f (H, D): result: gradient with respect to W_f
 *   grad_U_f (H, H): result: gradient with respect to U_f
 *   grad_b_f (H): result: gradient with respect to b_f
 *   grad_W_g (H, D): result: gradient with respect to W_g
 *   grad_U_g (H, H): result: gradient with respect to U_g
 *   grad_b_g (H): result: gradient with respect to b_g
 *   grad_W_o (H, D): result: gradient with respect to W_o
 *   grad_U_o (H, H): result: gradient with respect to U_o
 *   grad_b_o (H): result: gradient with respect to b_o
 */
void sg_lstm_float32_backward(int T, int B, int D, int H, const int *batch_sizes,
    const float *x_seq,
    const float *h_init,
    const float *c_init,
    const float *W_i,
    const float *U_i,
    const float *b_i,
    const float *W_f,
    const float *U_f,
    const float *b_f,
    const float *W_g,
    const float *U_g,
    const float *b_g,
    const float *W_o,
    const float *U_o,
    const float *b_o,
    const float *h_seq,
    const float *c_seq,
    const float *i_tape,
    const float *f_tape,
    const float *g_tape,
    const float *o_tape,
    const float *grad_h_seq,
    const float *grad_c_seq,
    float *grad_x_seq,
    float *grad_h_init,
    float *grad_c_init,
    float *grad_W_i,
    float *grad_U_i,
    float *grad_b_i,
    float *grad_W_f,
    float *grad_U_f,
    float *grad_b_f,
    float *grad_W_g,
    float *grad_U_g,
    float *grad_b_g,
    float *grad_W_o,
    float *grad_U_o,
    float *grad_b_o,
    float *work)
{
    (void)b_i;
    (void)b_f;
    (void)b_g;
    (void)b_o;
    const int all_rows = sg_all_rows(T, B, batch_sizes);
    const int h_adjoints_width = 4 * H;
    /* δi_pre, δf_pre, δg_pre, δo_pre side by side, at every step */
    float *const h_adjoints = work;
    /* (U_i, U_f, U_g, U_o) side by side, for every step */
    float *const h_weights = h_adjoints + (size_t)T * B * h_adjoints_width;
    /* (W_i, W_f, W_g, W_o) stacked, for all steps */
    float *const x_weights = h_weights + (size_t)H * h_adjoints_width;
    /* gradients of (U_i, U_f, U_g, U_o) stacked */
    float *const grad_h_weights = x_weights + (size_t)D * h_adjoints_width;
    /* gradients of (W_i, W_f, W_g, W_o) stacked */
    float *const grad_x_weights = grad_h_weights + (size_t)H * h_adjoints_width;
    /* δc' of the current step */
    float *const d_c_next_row = grad_x_weights + (size_t)D * h_adjoints_width;
    /* δh' of the current step */
    float *const d_h_next_row = d_c_next_row + (size_t)B * H;
    memset(grad_W_i, 0, sizeof(float) * (size_t)H * (size_t)D);
    memset(grad_U_i, 0, sizeof(float) * (size_t)H * (size_t)H);
    memset(grad_b_i, 0, sizeof(float) * (size_t)H);
    memset(grad_W_f, 0, sizeof(float) * (size_t)H * (size_t)D);
    memset(grad_U_f, 0, sizeof(float) * (size_t)H * (size_t)H);
    memset(grad_b_f, 0, sizeof(float) * (size_t)H);
    memset(grad_W_g, 0, sizeof(float) * (size_t)H * (size_t)D);
    memset(grad_U_g, 0, sizeof(float) * (size_t)H * (size_t)H);
    memset(grad_b_g, 0, sizeof(float) * (size_t)H);
    memset(grad_W_o, 0, sizeof(float) * (size_t)H * (size_t)D);
    memset(grad_U_o, 0, sizeof(float) * (size_t)H * (size_t)H);
    memset(grad_b_o, 0, sizeof(float) * (size_t)H);
    /* (U_i, U_f, U_g, U_o) stacked */
    memcpy(h_weights, U_i, sizeof(float) * (size_t)H * H);
    memcpy(h_weights + (size_t)H * H, U_f, sizeof(float) * (size_t)H * H);
    memcpy(h_weights + (size_t)(2 * H) * H, U_g, sizeof(float) * (size_t)H * H);
    memcpy(h_weights + (size_t)(3 * H) * H, U_o, sizeof(float) * (size_t)H * H);
    /* (W_i, W_f, W_g, W_o) stacked */
    memcpy(x_weights, W_i, sizeof(float) * (size_t)H * D);
    memcpy(x_weights + (size_t)H * D, W_f, sizeof(float) * (size_t)H * D);
    memcpy(x_weights + (size_t)(2 * H) * D, W_g, sizeof(float) * (size_t)H * D);
    memcpy(x_weights + (size_t)(3 * H) * D, W_o, sizeof(float) * (size_t)H * D);
    size_t step_row = (size_t)all_rows;
    for (int t = T - 1; t >= 0; --t) {
        const int step_batch = sg_step_batch(batch_sizes, t, B);
        step_row -= (size_t)step_batch;
        const size_t previous_row = sg_previous_row(step_row, batch_sizes, t, B);
        float *const d_i_pre_row = h_adjoints + step_row * h_adjoints_width;
        float *const d_f_pre_row = h_adjoints + step_row * h_adjoints_width + H;
        float *const d_g_pre_row = h_adjoints + step_row * h_adjoints_width + 2 * H;
        float *const d_o_pre_row = h_adjoints + step_row * h_adjoints_width + 3 * H;
        float *const d_h_row = grad_h_init;
        float *const d_c_row = grad_c_init;
        const float *const c_row = t == 0 ? c_init : c_seq + previous_row * H;
        const float *const c_next_row = c_seq + step_row * H;
        const float *const f_row = f_tape + step_row * H;
        const float *const g_row = g_tape + step_row * H;
        const float *const i_row = i_tape + step_row * H;
        const float *const o_row = o_tape + step_row * H;
        /* δh': gradient into h' from step t+1 and the loss */
        if (grad_h_seq != NULL) {
            for (size_t n = 0; n < (size_t)step_batch * H; ++n) {
                d_h_next_row[n] = grad_h_init[n] + grad_h_seq[step_row * H + n];
            }
        } else {
            memcpy(d_h_next_row, grad_h_init, sizeof(float) * (size_t)step_batch * H);
        }
        /* δc': gradient into c' from step t+1 and the loss */
        if (grad_c_seq != NULL) {
            for (size_t n = 0; n < (size_t)step_batch * H; ++n) {
                d_c_next_row[n] = grad_c_init[n] + grad_c_seq[step_row * H + n];
            }
        } else {
            memcpy(d_c_next_row, grad_c_init, sizeof(float) * (size_t)step_batch * H);
        }
        /* τ1, δc'_tot, δo, δo_pre, δg, δg_pre, δf, δf_pre, δi, δi_pre, δc, δb_i, δb_f, δb_g, δb_o */
        for (int sample = 0; sample < step_batch; ++sample) {
            const float *const c_sample = c_row + (size_t)sample * H;
            const float *const c_next_sample = c_next_row + (size_t)sample * H;
            const float *const f_sample = f_row + (size_t)sample * H;
            const float *const g_sample = g_row + (size_t)sample * H;
            const float *const i_sample = i_row + (size_t)sample * H;
            const float *const o_sample = o_row + (size_t)sample * H;
            const float *const d_c_next_sample = d_c_next_row + (size_t)sample * H;
            const float *const d_h_next_sample = d_h_next_row + (size_t)sample * H;
            float *const d_o_pre_sample = d_o_pre_row + (size_t)sample * h_adjoints_width;
            float *const d_g_pre_sample = d_g_pre_row + (size_t)sample * h_adjoints_width;
            float *const d_f_pre_sample = d_f_pre_row + (size_t)sample * h_adjoints_width;
            float *const d_i_pre_sample = d_i_pre_row + (size_t)sample * h_adjoints_width;
            float *const d_c_sample = d_c_row + (size_t)sample * H;
            SG_UNITS_INDEPENDENT
            for (int unit = 0; unit < H; ++unit) {
                const float c = c_sample[unit];
                const float c_next = c_next_sample[unit];
                const float f = f_sample[unit];
                const float g = g_sample[unit];
                const float i = i_sample[unit];
                const float o = o_sample[unit];
                const float d_c_next = d_c_next_sample[unit];
                const float d_h_next = d_h_next_sample[unit];
                const float tmp1 = tanhf(c_next);
                const float d_c_next_tot = o*d_h_next*(1 - (tmp1*tmp1)) + d_c_next;
                const float d_o = d_h_next*tmp1;
                const float d_o_pre = o*d_o*(1 - o);
                const float d_g = i*d_c_next_tot;
                const float d_g_pre = d_g*(1 - (g*g));
                const float d_f = c*d_c_next_tot;
                const float d_f_pre = f*d_f*(1 - f);
                const float d_i = g*d_c_next_tot;
                const float d_i_pre = i*d_i*(1 - i);
                const float d_c = f*d_c_next_tot;
                d_o_pre_sample[unit] = d_o_pre;
                d_g_pre_sample[unit] = d_g_pre;
                d_f_pre_sample[unit] = d_f_pre;
                d_i_pre_sample[unit] = d_i_pre;
                d_c_sample[unit] = d_c;
                grad_b_i[unit] += d_i_pre;
                grad_b_f[unit] += d_f_pre;
                grad_b_g[unit] += d_g_pre;
                grad_b_o[unit] += d_o_pre;
            }
        }

        /* δh = (U_i, U_f, U_g, U_o)ᵀ @ (δi_pre, δf_pre, δg_pre, δo_pre) */
        sg_gemm_nn(step_batch, H, h_adjoints_width, d_i_pre_row, h_adjoints_width, h_weights, H, d_h_row, H, 0);
    }
    /* δx = (W_i, W_f, W_g, W_o)ᵀ @ (δi_pre, δf_pre, δg_pre, δo_pre), all steps */
    sg_gemm_nn(all_rows, D, h_adjoints_width, h_adjoints, h_adjoints_width, x_weights, D, grad_x_seq, D, 0);
    /* δ(U_i, U_f, U_g, U_o) += Σ (δi_pre, δf_pre, δg_pre, δo_pre) ⊗ h, all steps */
    memset(grad_h_weights, 0, sizeof(float) * (size_t)h_adjoints_width * H);
    sg_gemm_tn_previous(h_adjoints_width, H, T, B, batch_sizes, h_adjoints, h_adjoints_width, h_init, h_seq, H, grad_h_weights, H);
    sg_add((size_t)H * H, grad_h_weights, grad_U_i);
    sg_add((size_t)H * H, grad_h_weights + (size_t)H * H, grad_U_f);
    sg_add((size_t)H * H, grad_h_weights + (size_t)(2 * H) * H, grad_U_g);
    sg_add((size_t)H * H, grad_h_weights + (size_t)(3 * H) * H, grad_U_o);
    /* δ(W_i, W_f, W_g, W_o) += Σ (δi_pre, δf_pre, δg_pre, δo_pre) ⊗ x, all steps */
    memset(grad_x_weights, 0, sizeof(float) * (size_t)h_adjoints_width * D);
    sg_gemm_tn(h_adjoints_width, D, all_rows, h_adjoints, h_adjoints_width, x_seq, D, grad_x_weights, D);
    sg_add((size_t)H * D, grad_x_weights, grad_W_i);
    sg_add((size_t)H * D, grad_x_weights + (size_t)H * D, grad_W_f);
    sg_add((size_t)H * D, grad_x_weights + (size_t)(2 * H) * D, grad_W_g);
    sg_add((size_t)H * D, grad_x_weights + (size_t)(3 * H) * D, grad_W_o);
}

size_t sg_lstm_float32_infer_work(int T, int B, int D, int H)
{
    return (4 * (size_t)H) * (size_t)B + (4 * (size_t)H) * (size_t)T * B + (size_t)H * (4 * (size_t)H) + (size_t)D * (4 * (size_t)H);
}

/* Forward pass over T steps, saving nothing for a backward pass.
 *   batch_sizes (T): samples run at each step, longest first, sequences packed; NULL: B each step
 *   x_seq (T, B, D): input x at every step
 *   h_init (B, H): initial state h
 *   c_init (B, H): initial state c
 *   W_i (H, D): parameter W_i
 *   U_i (H, H): parameter U_i
 *   b_i (H): parameter b_i
 *   W_f (H, D): parameter W_f
 *   U_f (H, H): parameter U_f
 *   b_f (H): parameter b_f
 *   W_g (H, D): parameter W_g
 *   U_g (H, H): parameter U_g
 *   b_g (H): parameter b_g
 *   W_o (H, D): parameter W_o
 *   U_o (H, H): parameter U_o
 *   b_o (H): parameter b_o
 *   h_seq (T, B, H): state h after every step
 *   c_seq (T, B, H): state c after every step
 */
void sg_lstm_float32_infer(int T, int B, int D, int H, const int *batch_sizes,
    const float *x_seq,
    const float *h_init,
    const float *c_init,
    const float *W_i,
    const float *U_i,
    const float *b_i,
    const float *W_f,
    const float *U_f,
    const float *b_f,
    const float *W_g,
    const float *U_g,
    const float *b_g,
    const float *W_o,
    const float *U_o,
    const float *b_o,
    float *h_seq,
    float *c_seq,
    float *work)
{
    const int all_rows = sg_all_rows(T, B, batch_sizes);
    const int h_products_width = 4 * H;
    const int x_products_width = 4 * H;
    /* U_i@h, U_f@h, U_g@h, U_o@h side by side */
    float *const h_products = work;
    /* W_i@x, W_f@x, W_g@x, W_o@x side by side, at every step */
    float *const x_products = h_products + (size_t)B * h_products_width;
    /* (U_i, U_f, U_g, U_o)ᵀ side by side, for every step */
    float *const h_weights = x_products + (size_t)T * B * x_products_width;
    /* (W_i, W_f, W_g, W_o) stacked, for all steps */
    float *const x_weights = h_weights + (size_t)H * h_products_width;
    /* (W_i, W_f, W_g, W_o) stacked */
    memcpy(x_weights, W_i, sizeof(float) * (size_t)H * D);
    memcpy(x_weights + (size_t)H * D, W_f, sizeof(float) * (size_t)H * D);
    memcpy(x_weights + (size_t)(2 * H) * D, W_g, sizeof(float) * (size_t)H * D);
    memcpy(x_weights + (size_t)(3 * H) * D, W_o, sizeof(float) * (size_t)H * D);
    /* (U_i, U_f, U_g, U_o)ᵀ side by side */
    sg_pack_t(H, H, U_i, h_weights, h_products_width);
    sg_pack_t(H, H, U_f, h_weights + H, h_products_width);
    sg_pack_t(H, H, U_g, h_weights + 2 * H, h_products_width);
    sg_pack_t(H, H, U_o, h_weights + 3 * H, h_products_width);
    /* (W_i@x, W_f@x, W_g@x, W_o@x) = (W_i, W_f, W_g, W_o) @ x, all steps */
    sg_gemm_nt(all_rows, x_products_width, D, x_seq, D, x_weights, D, x_products, x_products_width, 0);
    size_t step_row = 0;
    for (int t = 0; t < T; ++t) {
        const int step_batch = sg_step_batch(batch_sizes, t, B);
        const size_t previous_row = sg_previous_row(step_row, batch_sizes, t, B);
        float *const U_i_h_row = h_products;
        float *const U_f_h_row = h_products + H;
        float *const U_g_h_row = h_products + 2 * H;
        float *const U_o_h_row = h_products + 3 * H;
        float *const W_i_x_row = x_products + step_row * x_products_width;
        float *const W_f_x_row = x_products + step_row * x_products_width + H;
        float *const W_g_x_row = x_products + step_row * x_products_width + 2 * H;
        float *const W_o_x_row = x_products + step_row * x_products_width + 3 * H;
        float *const c_next_row = c_seq + step_row * H;
        float *const h_next_row = h_seq + step_row * H;
        const float *const h_row = t == 0 ? h_init : h_seq + previous_row * H;
        const float *const c_row = t == 0 ? c_init : c_seq + previous_row * H;
        /* (U_i@h, U_f@h, U_g@h, U_o@h) = (U_i, U_f, U_g, U_o) @ h */
        sg_gemm_nn(step_batch, h_products_width, H, h_row, H, h_weights, h_products_width, U_i_h_row, h_products_width, 0);

        /* i, f, g, o, c', h' */
        for (int sample = 0; sample < step_batch; ++sample) {
            const float *const U_f_h_sample = U_f_h_row + (size_t)sample * h_products_width;
            const float *const U_g_h_sample = U_g_h_row + (size_t)sample * h_products_width;
            const float *const U_i_h_sample = U_i_h_row + (size_t)sample * h_products_width;
            const float *const U_o_h_sample = U_o_h_row + (size_t)sample * h_products_width;
            const float *const W_f_x_sample = W_f_x_row + (size_t)sample * x_products_width;
            const float *const W_g_x_sample = W_g_x_row + (size_t)sample * x_products_width;
            const float *const W_i_x_sample = W_i_x_row + (size_t)sample * x_products_width;
            const float *const W_o_x_sample = W_o_x_row + (size_t)sample * x_products_width;
            const float *const c_sample = c_row + (size_t)sample * H;
            float *const c_next_sample = c_next_row + (size_t)sample * H;
            float *const h_next_sample = h_next_row + (size_t)sample * H;
            SG_UNITS_INDEPENDENT
            for (int unit = 0; unit < H; ++unit) {
                const float U_f_h = U_f_h_sample[unit];
                const float U_g_h = U_g_h_sample[unit];
                const float U_i_h = U_i_h_sample[unit];
                const float U_o_h = U_o_h_sample[unit];
                const float W_f_x = W_f_x_sample[unit];
                const float W_g_x = W_g_x_sample[unit];
                const float W_i_x = W_i_x_sample[unit];
                const float W_o_x = W_o_x_sample[unit];
                const float c = c_sample[unit];
                const float i = sg_sigmoid(U_i_h + W_i_x + b_i[unit]);
                const float f = sg_sigmoid(U_f_h + W_f_x + b_f[unit]);
                const float g = tanhf(U_g_h + W_g_x + b_g[unit]);
                const float o = sg_sigmoid(U_o_h + W_o_x + b_o[unit]);
                const float c_next = c*f + g*i;
                const float h_next = o*tanhf(c_next);
                c_next_sample[unit] = c_next;
                h_next_sample[unit] = h_next;
            }
        }
        step_row += (size_t)step_batch;
    }
}

size_t sg_lstm_float32_step_work(int B, int D, int H)
{
    return (size_t)B * H + (size_t)B * H + sg_lstm_float32_infer_work(1, B, D, H);
}

/* One step: sg_lstm_float32_infer with T = 1, then the new states copied over the old. */
void sg_lstm_float32_step(int B, int D, int H,
    const float *x_step,
    float *h_state,
    float *c_state,
    const float *W_i,
    const float *U_i,
    const float *b_i,
    const float *W_f,
    const float *U_f,
    const float *b_f,
    const float *W_g,
    const float *U_g,
    const float *b_g,
    const float *W_o,
    const float *U_o,
    const float *b_o,
    float *work)
{
    float *const h_next_state = work;
    float *const c_next_state = h_next_state + (size_t)B * H;
    sg_lstm_float32_infer(1, B, D, H, NULL,
        x_step,
        h_state,
        c_state,
        W_i,
        U_i,
        b_i,
        W_f,
        U_f,
        b_f,
        W_g,
        U_g,
        b_g,
        W_o,
        U_o,
        b_o,
        h_next_state,
        c_next_state,
        c_next_state + (size_t)B * H);
    memcpy(h_state, h_next_state, sizeof(float) * (size_t)B * H);
    memcpy(c_state, c_next_state, sizeof(float) * (size_t)B * H);
}
