/*
 * The machine line every C benchmark prints first (the .c files in tools/bench/): CPU model, cores
 * and kernel, so that figures are read with the machine they were measured on.
 */
#ifndef FLOWSCOPE_BENCH_MACHINE_H
#define FLOWSCOPE_BENCH_MACHINE_H

/* Prints "# NAME  machine: MODEL, N cores, Linux RELEASE" on stdout. */
void bench_machine_line(const char *name);

#endif
