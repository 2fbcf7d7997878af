/* lstm_float32.h: exported by symgate 0.1.0 from templates/export.h.jinja. Do not edit:
 * export the cell again.
 *
 * The recurrent cell lstm in float, as a standalone C99 library (lstm_float32.c): libm
 * only, no BLAS, no allocation, no global state.
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
 * ABI
 *
 * Sizes: every function takes the number of steps T (but sg_lstm_float32_step) and of samples B,
 * then the cell's sizes D, H, as int.
 * The passes over T steps then take batch_sizes: NULL for every step running all B samples, or,
 * for sequences of different lengths, the samples each step runs (T numbers, none larger than the
 * one before: the samples sorted by length, longest first), with every sequence packed step after
 * step, each step's rows those of the samples still running (PyTorch's PackedSequence layout).
 * Arrays: C-contiguous (row-major) float. Sequences are (T, B, size), one step's vectors
 * (B, size), matrices (rows, cols), vectors (size). SG_LSTM_FLOAT32_SIZE_<array>(T, B, D, H)
 * is the number of elements of each array argument and SG_LSTM_FLOAT32_WORK_<function>(T, B, D, H)
 * that of each function's `work` (T is ignored by the step's). They are constant expressions
 * when their arguments are, so buffers may be static.
 * Access: `const` arrays are only read. The others are written (every element) and not read,
 * except those marked "read and written" below.
 * Between calls: `work` is scratch; it needs no initial values and nothing in it is kept.
 * sg_lstm_float32_forward's arrays (inputs, initial states, parameters, states, outputs,
 * tape) must stay unchanged until sg_lstm_float32_backward has read them.
 * sg_lstm_float32_step carries the cell's memory in its state arrays, nothing else.
 * No two arrays of a call may overlap. The functions write no global data: calls on distinct
 * arrays may run concurrently.
 */
#ifndef SYMGATE_LSTM_FLOAT32_H
#define SYMGATE_LSTM_FLOAT32_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Elements of each array argument, for T steps, B samples, D, H. */
#define SG_LSTM_FLOAT32_SIZE_x_seq(T, B, D, H) ((size_t)(T) * (size_t)(B) * (size_t)(D))
#define SG_LSTM_FLOAT32_SIZE_h_init(T, B, D, H) ((size_t)(B) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_c_init(T, B, D, H) ((size_t)(B) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_W_i(T, B, D, H) ((size_t)(H) * (size_t)(D))
#define SG_LSTM_FLOAT32_SIZE_U_i(T, B, D, H) ((size_t)(H) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_b_i(T, B, D, H) ((size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_W_f(T, B, D, H) ((size_t)(H) * (size_t)(D))
#define SG_LSTM_FLOAT32_SIZE_U_f(T, B, D, H) ((size_t)(H) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_b_f(T, B, D, H) ((size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_W_g(T, B, D, H) ((size_t)(H) * (size_t)(D))
#define SG_LSTM_FLOAT32_SIZE_U_g(T, B, D, H) ((size_t)(H) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_b_g(T, B, D, H) ((size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_W_o(T, B, D, H) ((size_t)(H) * (size_t)(D))
#define SG_LSTM_FLOAT32_SIZE_U_o(T, B, D, H) ((size_t)(H) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_b_o(T, B, D, H) ((size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_h_seq(T, B, D, H) ((size_t)(T) * (size_t)(B) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_c_seq(T, B, D, H) ((size_t)(T) * (size_t)(B) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_i_tape(T, B, D, H) ((size_t)(T) * (size_t)(B) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_f_tape(T, B, D, H) ((size_t)(T) * (size_t)(B) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_g_tape(T, B, D, H) ((size_t)(T) * (size_t)(B) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_o_tape(T, B, D, H) ((size_t)(T) * (size_t)(B) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_grad_h_seq(T, B, D, H) ((size_t)(T) * (size_t)(B) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_grad_c_seq(T, B, D, H) ((size_t)(T) * (size_t)(B) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_grad_x_seq(T, B, D, H) ((size_t)(T) * (size_t)(B) * (size_t)(D))
#define SG_LSTM_FLOAT32_SIZE_grad_h_init(T, B, D, H) ((size_t)(B) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_grad_c_init(T, B, D, H) ((size_t)(B) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_grad_W_i(T, B, D, H) ((size_t)(H) * (size_t)(D))
#define SG_LSTM_FLOAT32_SIZE_grad_U_i(T, B, D, H) ((size_t)(H) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_grad_b_i(T, B, D, H) ((size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_grad_W_f(T, B, D, H) ((size_t)(H) * (size_t)(D))
#define SG_LSTM_FLOAT32_SIZE_grad_U_f(T, B, D, H) ((size_t)(H) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_grad_b_f(T, B, D, H) ((size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_grad_W_g(T, B, D, H) ((size_t)(H) * (size_t)(D))
#define SG_LSTM_FLOAT32_SIZE_grad_U_g(T, B, D, H) ((size_t)(H) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_grad_b_g(T, B, D, H) ((size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_grad_W_o(T, B, D, H) ((size_t)(H) * (size_t)(D))
#define SG_LSTM_FLOAT32_SIZE_grad_U_o(T, B, D, H) ((size_t)(H) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_grad_b_o(T, B, D, H) ((size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_x_step(T, B, D, H) ((size_t)(B) * (size_t)(D))
#define SG_LSTM_FLOAT32_SIZE_h_state(T, B, D, H) ((size_t)(B) * (size_t)(H))
#define SG_LSTM_FLOAT32_SIZE_c_state(T, B, D, H) ((size_t)(B) * (size_t)(H))

/* Elements of each function's `work`. */
#define SG_LSTM_FLOAT32_WORK_forward(T, B, D, H) ((4 * (size_t)(H)) * (size_t)(B) + (4 * (size_t)(H)) * (size_t)(T) * (B) + (size_t)(H) * (4 * (size_t)(H)) + (size_t)(D) * (4 * (size_t)(H)))
#define SG_LSTM_FLOAT32_WORK_backward(T, B, D, H) ((4 * (size_t)(H)) * (size_t)(T) * (B) + (size_t)(H) * (4 * (size_t)(H)) + (size_t)(D) * (4 * (size_t)(H)) + (size_t)(H) * (4 * (size_t)(H)) + (size_t)(D) * (4 * (size_t)(H)) + (size_t)(B) * (H) + (size_t)(B) * (H))
#define SG_LSTM_FLOAT32_WORK_infer(T, B, D, H) ((4 * (size_t)(H)) * (size_t)(B) + (4 * (size_t)(H)) * (size_t)(T) * (B) + (size_t)(H) * (4 * (size_t)(H)) + (size_t)(D) * (4 * (size_t)(H)))
#define SG_LSTM_FLOAT32_WORK_step(T, B, D, H) (((size_t)(B) * (H)) + ((size_t)(B) * (H)) + SG_LSTM_FLOAT32_WORK_infer(1, B, D, H))

/* Forward pass over T steps, for training: writes the states and outputs after every step and the
 * tape (`*_tape`, what the backward pass reads). Keep every array it reads or writes unchanged
 * until sg_lstm_float32_backward has run.
 *   x_seq (T, B, D), read: input x at every step
 *   h_init (B, H), read: initial state h
 *   c_init (B, H), read: initial state c
 *   W_i (H, D), read: parameter W_i
 *   U_i (H, H), read: parameter U_i
 *   b_i (H), read: parameter b_i
 *   W_f (H, D), read: parameter W_f
 *   U_f (H, H), read: parameter U_f
 *   b_f (H), read: parameter b_f
 *   W_g (H, D), read: parameter W_g
 *   U_g (H, H), read: parameter U_g
 *   b_g (H), read: parameter b_g
 *   W_o (H, D), read: parameter W_o
 *   U_o (H, H), read: parameter U_o
 *   b_o (H), read: parameter b_o
 *   h_seq (T, B, H), written: state h after every step
 *   c_seq (T, B, H), written: state c after every step
 *   i_tape (T, B, H), written: i at every step, kept for the backward pass
 *   f_tape (T, B, H), written: f at every step, kept for the backward pass
 *   g_tape (T, B, H), written: g at every step, kept for the backward pass
 *   o_tape (T, B, H), written: o at every step, kept for the backward pass
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
    float *work);
size_t sg_lstm_float32_forward_work(int T, int B, int D, int H);

/* Backpropagation through time, after sg_lstm_float32_forward on the same arrays. Give the loss
 * gradients with respect to every step's states (and outputs), and in grad_h_init, grad_c_init the
 * gradients with respect to the final states (zeros if the loss does not read them). Parameter
 * gradients are overwritten (summed over steps and samples), not accumulated.
 *   x_seq (T, B, D), read: input x at every step
 *   h_init (B, H), read: initial state h
 *   c_init (B, H), read: initial state c
 *   W_i (H, D), read: parameter W_i
 *   U_i (H, H), read: parameter U_i
 *   b_i (H), read: parameter b_i
 *   W_f (H, D), read: parameter W_f
 *   U_f (H, H), read: parameter U_f
 *   b_f (H), read: parameter b_f
 *   W_g (H, D), read: parameter W_g
 *   U_g (H, H), read: parameter U_g
 *   b_g (H), read: parameter b_g
 *   W_o (H, D), read: parameter W_o
 *   U_o (H, H), read: parameter U_o
 *   b_o (H), read: parameter b_o
 *   h_seq (T, B, H), read: state h after every step
 *   c_seq (T, B, H), read: state c after every step
 *   i_tape (T, B, H), read: i at every step, kept for the backward pass
 *   f_tape (T, B, H), read: f at every step, kept for the backward pass
 *   g_tape (T, B, H), read: g at every step, kept for the backward pass
 *   o_tape (T, B, H), read: o at every step, kept for the backward pass
 *   grad_h_seq (T, B, H), read: loss gradient with respect to h at every step (NULL: none)
 *   grad_c_seq (T, B, H), read: loss gradient with respect to c at every step (NULL: none)
 *   grad_x_seq (T, B, D), written: gradient with respect to input x
 *   grad_h_init (B, H), read and written: in: gradient with respect to the final h; out: with respect to the initial h
 *   grad_c_init (B, H), read and written: in: gradient with respect to the final c; out: with respect to the initial c
 *   grad_W_i (H, D), written: gradient with respect to W_i
 *   grad_U_i (H, H), written: gradient with respect to U_i
 *   grad_b_i (H), written: gradient with respect to b_i
 *   grad_W_f (H, D), written: gradient with respect to W_f
 *   grad_U_f (H, H), written: gradient with respect to U_f
 *   grad_b_f (H), written: gradient with respect to b_f
 *   grad_W_g (H, D), written: gradient with respect to W_g
 *   grad_U_g (H, H), written: gradient with respect to U_g
 *   grad_b_g (H), written: gradient with respect to b_g
 *   grad_W_o (H, D), written: gradient with respect to W_o
 *   grad_U_o (H, H), written: gradient with respect to U_o
 *   grad_b_o (H), written: gradient with respect to b_o
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
    float *work);
size_t sg_lstm_float32_backward_work(int T, int B, int D, int H);

/* Forward pass over T steps, for inference: writes the states and outputs after every step as
 * sg_lstm_float32_forward does, and keeps nothing for a backward pass.
 *   x_seq (T, B, D), read: input x at every step
 *   h_init (B, H), read: initial state h
 *   c_init (B, H), read: initial state c
 *   W_i (H, D), read: parameter W_i
 *   U_i (H, H), read: parameter U_i
 *   b_i (H), read: parameter b_i
 *   W_f (H, D), read: parameter W_f
 *   U_f (H, H), read: parameter U_f
 *   b_f (H), read: parameter b_f
 *   W_g (H, D), read: parameter W_g
 *   U_g (H, H), read: parameter U_g
 *   b_g (H), read: parameter b_g
 *   W_o (H, D), read: parameter W_o
 *   U_o (H, H), read: parameter U_o
 *   b_o (H), read: parameter b_o
 *   h_seq (T, B, H), written: state h after every step
 *   c_seq (T, B, H), written: state c after every step
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
    float *work);
size_t sg_lstm_float32_infer_work(int T, int B, int D, int H);

/* One step, for streaming: sg_lstm_float32_infer with T = 1, the states updated in place. Before
 * the first step, set the states to the initial state (zeros, usually).
 *   x_step (B, D), read: input x of this step
 *   h_state (B, H), read and written: state h: before the step on entry, after it on return
 *   c_state (B, H), read and written: state c: before the step on entry, after it on return
 *   W_i (H, D), read: parameter W_i
 *   U_i (H, H), read: parameter U_i
 *   b_i (H), read: parameter b_i
 *   W_f (H, D), read: parameter W_f
 *   U_f (H, H), read: parameter U_f
 *   b_f (H), read: parameter b_f
 *   W_g (H, D), read: parameter W_g
 *   U_g (H, H), read: parameter U_g
 *   b_g (H), read: parameter b_g
 *   W_o (H, D), read: parameter W_o
 *   U_o (H, H), read: parameter U_o
 *   b_o (H), read: parameter b_o
 */
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
    float *work);
size_t sg_lstm_float32_step_work(int B, int D, int H);

#ifdef __cplusplus
}
#endif

#endif
