// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

// The objects are committed: `go build` needs no clang. `make generate`
// rebuilds them with Debian's clang-19; scripts/check-generated.sh checks
// that they match their sources.

//go:generate go tool bpf2go -cc "../../bpf/clang.sh clang-19" -strip llvm-strip-19 -target bpfel sched ../../bpf/sched.bpf.c -- -I../../headers -I../../bpf -O2 -g -mcpu=v3 -Wall -Werror
//go:generate go tool bpf2go -cc "../../bpf/clang.sh clang-19" -strip llvm-strip-19 -target bpfel block ../../bpf/block.bpf.c -- -I../../headers -I../../bpf -O2 -g -mcpu=v3 -Wall -Werror
//go:generate go tool bpf2go -cc "../../bpf/clang.sh clang-19" -strip llvm-strip-19 -target bpfel net ../../bpf/net.bpf.c -- -I../../headers -I../../bpf -O2 -g -mcpu=v3 -Wall -Werror
//go:generate go tool bpf2go -cc "../../bpf/clang.sh clang-19" -strip llvm-strip-19 -target bpfel procs ../../bpf/procs.bpf.c -- -I../../headers -I../../bpf -O2 -g -mcpu=v3 -Wall -Werror
//go:generate go tool bpf2go -cc "../../bpf/clang.sh clang-19" -strip llvm-strip-19 -target bpfel cgroups ../../bpf/cgroups.bpf.c -- -I../../headers -I../../bpf -O2 -g -mcpu=v3 -Wall -Werror
//go:generate go tool bpf2go -cc "../../bpf/clang.sh clang-19" -strip llvm-strip-19 -target bpfel tasks ../../bpf/tasks.bpf.c -- -I../../headers -I../../bpf -O2 -g -mcpu=v3 -Wall -Werror
//go:generate go tool bpf2go -cc "../../bpf/clang.sh clang-19" -strip llvm-strip-19 -target bpfel taskwalk ../../bpf/taskwalk.bpf.c -- -I../../headers -I../../bpf -O2 -g -mcpu=v3 -Wall -Werror
//go:generate go tool bpf2go -cc "../../bpf/clang.sh clang-19" -strip llvm-strip-19 -target bpfel -output-suffix _test test ../../bpf/test.bpf.c -- -I../../headers -I../../bpf -O2 -g -mcpu=v3 -Wall -Werror
