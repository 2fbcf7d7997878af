/* example.c: exported by symgate 0.1.0 from templates/export_example.c.jinja.
 *
 * Calls every function of lstm_float32.h on built-in numbers and prints what they return.
 * Build and run:
 *
 *     cc -std=c99 -O2 -o example example.c lstm_float32.c -lm && ./example
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lstm_float32.h"

/* This example's sizes: T steps, B samples, D, H. */
enum { T = 5, B = 2, D = 3, H = 4 };

/* A function may need no workspace, and C has no arrays of size 0. */
#define SG_AT_LEAST_1(n) ((n) > 0 ? (n) : 1)

/* Smooth numbers in [-scale, scale], so the example reads no file. */
static void example_fill(float *a, size_t n, double scale, double phase)
{
    for (size_t k = 0; k < n; ++k) {
        a[k] = (float)(scale * sin(0.7 * (double)k + phase));
    }
}

static void example_print(const char *label, const float *a, size_t n)
{
    printf("%s:", label);
    for (size_t k = 0; k < n; ++k) {
        printf(" %.6g", (double)a[k]);
    }
    printf("\n");
}

static double example_largest_difference(const float *a, const float *b, size_t n, double largest)
{
    for (size_t k = 0; k < n; ++k) {
        const double difference = fabs((double)a[k] - (double)b[k]);
        largest = difference > largest ? difference : largest;
    }
    return largest;
}

int main(void)
{
    /* Every buffer, sized by the header's macros. Static: nothing is allocated, all start at zero. */
    static float x_seq[SG_LSTM_FLOAT32_SIZE_x_seq(T, B, D, H)];
    static float h_init[SG_LSTM_FLOAT32_SIZE_h_init(T, B, D, H)];
    static float c_init[SG_LSTM_FLOAT32_SIZE_c_init(T, B, D, H)];
    static float W_i[SG_LSTM_FLOAT32_SIZE_W_i(T, B, D, H)];
    static float U_i[SG_LSTM_FLOAT32_SIZE_U_i(T, B, D, H)];
    static float b_i[SG_LSTM_FLOAT32_SIZE_b_i(T, B, D, H)];
    static float W_f[SG_LSTM_FLOAT32_SIZE_W_f(T, B, D, H)];
    static float U_f[SG_LSTM_FLOAT32_SIZE_U_f(T, B, D, H)];
    static float b_f[SG_LSTM_FLOAT32_SIZE_b_f(T, B, D, H)];
    static float W_g[SG_LSTM_FLOAT32_SIZE_W_g(T, B, D, H)];
    static float U_g[SG_LSTM_FLOAT32_SIZE_U_g(T, B, D, H)];
    static float b_g[SG_LSTM_FLOAT32_SIZE_b_g(T, B, D, H)];
    static float W_o[SG_LSTM_FLOAT32_SIZE_W_o(T, B, D, H)];
    static float U_o[SG_LSTM_FLOAT32_SIZE_U_o(T, B, D, H)];
    static float b_o[SG_LSTM_FLOAT32_SIZE_b_o(T, B, D, H)];
    static float h_seq[SG_LSTM_FLOAT32_SIZE_h_seq(T, B, D, H)];
    static float c_seq[SG_LSTM_FLOAT32_SIZE_c_seq(T, B, D, H)];
    static float i_tape[SG_LSTM_FLOAT32_SIZE_i_tape(T, B, D, H)];
    static float f_tape[SG_LSTM_FLOAT32_SIZE_f_tape(T, B, D, H)];
    static float g_tape[SG_LSTM_FLOAT32_SIZE_g_tape(T, B, D, H)];
    static float o_tape[SG_LSTM_FLOAT32_SIZE_o_tape(T, B, D, H)];
    static float grad_h_seq[SG_LSTM_FLOAT32_SIZE_grad_h_seq(T, B, D, H)];
    static float grad_c_seq[SG_LSTM_FLOAT32_SIZE_grad_c_seq(T, B, D, H)];
    static float grad_x_seq[SG_LSTM_FLOAT32_SIZE_grad_x_seq(T, B, D, H)];
    static float grad_h_init[SG_LSTM_FLOAT32_SIZE_grad_h_init(T, B, D, H)];
    static float grad_c_init[SG_LSTM_FLOAT32_SIZE_grad_c_init(T, B, D, H)];
    static float grad_W_i[SG_LSTM_FLOAT32_SIZE_grad_W_i(T, B, D, H)];
    static float grad_U_i[SG_LSTM_FLOAT32_SIZE_grad_U_i(T, B, D, H)];
    static float grad_b_i[SG_LSTM_FLOAT32_SIZE_grad_b_i(T, B, D, H)];
    static float grad_W_f[SG_LSTM_FLOAT32_SIZE_grad_W_f(T, B, D, H)];
    static float grad_U_f[SG_LSTM_FLOAT32_SIZE_grad_U_f(T, B, D, H)];
    static float grad_b_f[SG_LSTM_FLOAT32_SIZE_grad_b_f(T, B, D, H)];
    static float grad_W_g[SG_LSTM_FLOAT32_SIZE_grad_W_g(T, B, D, H)];
    static float grad_U_g[SG_LSTM_FLOAT32_SIZE_grad_U_g(T, B, D, H)];
    static float grad_b_g[SG_LSTM_FLOAT32_SIZE_grad_b_g(T, B, D, H)];
    static float grad_W_o[SG_LSTM_FLOAT32_SIZE_grad_W_o(T, B, D, H)];
    static float grad_U_o[SG_LSTM_FLOAT32_SIZE_grad_U_o(T, B, D, H)];
    static float grad_b_o[SG_LSTM_FLOAT32_SIZE_grad_b_o(T, B, D, H)];
    static float h_state[SG_LSTM_FLOAT32_SIZE_h_state(T, B, D, H)];
    static float c_state[SG_LSTM_FLOAT32_SIZE_c_state(T, B, D, H)];
    static float work_forward[SG_AT_LEAST_1(SG_LSTM_FLOAT32_WORK_forward(T, B, D, H))];
    static float work_backward[SG_AT_LEAST_1(SG_LSTM_FLOAT32_WORK_backward(T, B, D, H))];
    static float work_infer[SG_AT_LEAST_1(SG_LSTM_FLOAT32_WORK_infer(T, B, D, H))];
    static float work_step[SG_AT_LEAST_1(SG_LSTM_FLOAT32_WORK_step(T, B, D, H))];

    /* Inputs, initial states and parameters: built-in numbers. */
    example_fill(x_seq, SG_LSTM_FLOAT32_SIZE_x_seq(T, B, D, H), 1.0, 0.0);
    example_fill(h_init, SG_LSTM_FLOAT32_SIZE_h_init(T, B, D, H), 0.5, 1.0);
    example_fill(c_init, SG_LSTM_FLOAT32_SIZE_c_init(T, B, D, H), 0.5, 2.0);
    example_fill(W_i, SG_LSTM_FLOAT32_SIZE_W_i(T, B, D, H), 0.5, 3.0);
    example_fill(U_i, SG_LSTM_FLOAT32_SIZE_U_i(T, B, D, H), 0.5, 4.0);
    example_fill(b_i, SG_LSTM_FLOAT32_SIZE_b_i(T, B, D, H), 0.5, 5.0);
    example_fill(W_f, SG_LSTM_FLOAT32_SIZE_W_f(T, B, D, H), 0.5, 6.0);
    example_fill(U_f, SG_LSTM_FLOAT32_SIZE_U_f(T, B, D, H), 0.5, 7.0);
    example_fill(b_f, SG_LSTM_FLOAT32_SIZE_b_f(T, B, D, H), 0.5, 8.0);
    example_fill(W_g, SG_LSTM_FLOAT32_SIZE_W_g(T, B, D, H), 0.5, 9.0);
    example_fill(U_g, SG_LSTM_FLOAT32_SIZE_U_g(T, B, D, H), 0.5, 10.0);
    example_fill(b_g, SG_LSTM_FLOAT32_SIZE_b_g(T, B, D, H), 0.5, 11.0);
    example_fill(W_o, SG_LSTM_FLOAT32_SIZE_W_o(T, B, D, H), 0.5, 12.0);
    example_fill(U_o, SG_LSTM_FLOAT32_SIZE_U_o(T, B, D, H), 0.5, 13.0);
    example_fill(b_o, SG_LSTM_FLOAT32_SIZE_b_o(T, B, D, H), 0.5, 14.0);

    /* 1. Forward over the sequence, keeping the tape for the backward pass. */
    sg_lstm_float32_forward(T, B, D, H, NULL,
        x_seq,
        h_init,
        c_init,
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
        h_seq,
        c_seq,
        i_tape,
        f_tape,
        g_tape,
        o_tape,
        work_forward);
    example_print("forward: h after the last step", h_seq + SG_LSTM_FLOAT32_SIZE_h_seq(T - 1, B, D, H), SG_LSTM_FLOAT32_SIZE_h_seq(1, B, D, H));
    example_print("forward: c after the last step", c_seq + SG_LSTM_FLOAT32_SIZE_c_seq(T - 1, B, D, H), SG_LSTM_FLOAT32_SIZE_c_seq(1, B, D, H));

    /* 2. Backward through time, for the loss sum(h) after the last step: its gradient is 1
     * there and 0 elsewhere (static arrays start at zero, so are the gradients with respect
     * to the final states). */
    for (size_t n = 0; n < SG_LSTM_FLOAT32_SIZE_grad_h_seq(1, B, D, H); ++n) {
        grad_h_seq[SG_LSTM_FLOAT32_SIZE_grad_h_seq(T - 1, B, D, H) + n] = 1.0F;
    }
    sg_lstm_float32_backward(T, B, D, H, NULL,
        x_seq,
        h_init,
        c_init,
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
        h_seq,
        c_seq,
        i_tape,
        f_tape,
        g_tape,
        o_tape,
        grad_h_seq,
        grad_c_seq,
        grad_x_seq,
        grad_h_init,
        grad_c_init,
        grad_W_i,
        grad_U_i,
        grad_b_i,
        grad_W_f,
        grad_U_f,
        grad_b_f,
        grad_W_g,
        grad_U_g,
        grad_b_g,
        grad_W_o,
        grad_U_o,
        grad_b_o,
        work_backward);
    example_print("d loss / d x", grad_x_seq, SG_LSTM_FLOAT32_SIZE_grad_x_seq(T, B, D, H));
    example_print("d loss / d h (initial)", grad_h_init, SG_LSTM_FLOAT32_SIZE_grad_h_init(T, B, D, H));
    example_print("d loss / d c (initial)", grad_c_init, SG_LSTM_FLOAT32_SIZE_grad_c_init(T, B, D, H));
    example_print("d loss / d W_i", grad_W_i, SG_LSTM_FLOAT32_SIZE_grad_W_i(T, B, D, H));
    example_print("d loss / d U_i", grad_U_i, SG_LSTM_FLOAT32_SIZE_grad_U_i(T, B, D, H));
    example_print("d loss / d b_i", grad_b_i, SG_LSTM_FLOAT32_SIZE_grad_b_i(T, B, D, H));
    example_print("d loss / d W_f", grad_W_f, SG_LSTM_FLOAT32_SIZE_grad_W_f(T, B, D, H));
    example_print("d loss / d U_f", grad_U_f, SG_LSTM_FLOAT32_SIZE_grad_U_f(T, B, D, H));
    example_print("d loss / d b_f", grad_b_f, SG_LSTM_FLOAT32_SIZE_grad_b_f(T, B, D, H));
    example_print("d loss / d W_g", grad_W_g, SG_LSTM_FLOAT32_SIZE_grad_W_g(T, B, D, H));
    example_print("d loss / d U_g", grad_U_g, SG_LSTM_FLOAT32_SIZE_grad_U_g(T, B, D, H));
    example_print("d loss / d b_g", grad_b_g, SG_LSTM_FLOAT32_SIZE_grad_b_g(T, B, D, H));
    example_print("d loss / d W_o", grad_W_o, SG_LSTM_FLOAT32_SIZE_grad_W_o(T, B, D, H));
    example_print("d loss / d U_o", grad_U_o, SG_LSTM_FLOAT32_SIZE_grad_U_o(T, B, D, H));
    example_print("d loss / d b_o", grad_b_o, SG_LSTM_FLOAT32_SIZE_grad_b_o(T, B, D, H));

    /* 3. Inference over the sequence: the same states, nothing kept. */
    sg_lstm_float32_infer(T, B, D, H, NULL,
        x_seq,
        h_init,
        c_init,
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
        h_seq,
        c_seq,
        work_infer);
    example_print("infer: h after the last step", h_seq + SG_LSTM_FLOAT32_SIZE_h_seq(T - 1, B, D, H), SG_LSTM_FLOAT32_SIZE_h_seq(1, B, D, H));
    example_print("infer: c after the last step", c_seq + SG_LSTM_FLOAT32_SIZE_c_seq(T - 1, B, D, H), SG_LSTM_FLOAT32_SIZE_c_seq(1, B, D, H));

    /* 4. The same, one step at a time: the states are updated in place. */
    memcpy(h_state, h_init, sizeof h_state);
    memcpy(c_state, c_init, sizeof c_state);
    for (int t = 0; t < T; ++t) {
        sg_lstm_float32_step(B, D, H,
            x_seq + SG_LSTM_FLOAT32_SIZE_x_seq(t, B, D, H),
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
            work_step);
    }
    double example_largest = 0.0;
    example_largest = example_largest_difference(h_state, h_seq + SG_LSTM_FLOAT32_SIZE_h_seq(T - 1, B, D, H), SG_LSTM_FLOAT32_SIZE_h_state(T, B, D, H), example_largest);
    example_largest = example_largest_difference(c_state, c_seq + SG_LSTM_FLOAT32_SIZE_c_seq(T - 1, B, D, H), SG_LSTM_FLOAT32_SIZE_c_state(T, B, D, H), example_largest);
    printf("step by step, the states differ from infer's by at most %g\n", example_largest);
    return 0;
}
