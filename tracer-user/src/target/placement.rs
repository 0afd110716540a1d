//! Where to place a uprobe in a Go function.
//!
//! A uprobe costs about 0.4 µs per hit on an instruction the kernel emulates (push of a
//! register, nop, jmp, jcc, call) and 14-20 µs in a VM on any other one, which the kernel
//! must single-step out of line (see arch/x86/kernel/uprobes.c, `branch_setup_xol_ops` and
//! `push_setup_xol_ops`). A Go function (Go >= 1.21 on amd64) starts with a stack check
//! (`cmp rsp, [r14+0x10]; jbe morestack`) and then `push rbp`: a probe on that push fires
//! once per call, with the arguments still in their registers, and is emulated. Older Go
//! versions set up the frame with `sub rsp`/`mov`; there the `jbe` of the stack check is
//! the first emulated instruction (it fires again if the stack grows and the function
//! restarts, which the kernel programs tolerate).
use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, Register};

/// How many instructions of the prologue are searched.
const PROLOGUE_INSTRUCTIONS: usize = 8;

/// A chosen probe point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Offset from the function's first instruction.
    pub offset: u64,
    /// True when the kernel emulates the instruction (fast); false when it single-steps it.
    pub emulated: bool,
    /// What is there, for logs and `doctor`.
    pub what: PlacementKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementKind {
    PushFramePointer,
    StackCheckBranch,
    OtherEmulated,
    FirstInstruction,
    AtCall,
    AfterCall,
    CalledNop,
    Return,
}

impl std::fmt::Display for PlacementKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::PushFramePointer => "push rbp",
            Self::StackCheckBranch => "stack-check branch",
            Self::OtherEmulated => "emulated instruction",
            Self::FirstInstruction => "first instruction (single-stepped)",
            Self::AtCall => "call",
            Self::AfterCall => "after the call",
            Self::CalledNop => "5-byte nop (a call into the kernel where it optimizes uprobes)",
            Self::Return => "ret (single-stepped)",
        })
    }
}

/// Chooses the probe point for a function entry from its first bytes of code, whose first
/// instruction is at virtual address `address`.
pub fn entry_point(code: &[u8], address: u64) -> Placement {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut first_emulated = None;
    let mut instruction = Instruction::default();
    for _ in 0..PROLOGUE_INSTRUCTIONS {
        if !decoder.can_decode() {
            break;
        }
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            break;
        }
        let offset = instruction.ip().wrapping_sub(address);
        if instruction.code() == Code::Push_r64 && instruction.op0_register() == Register::RBP {
            return Placement {
                offset,
                emulated: true,
                what: PlacementKind::PushFramePointer,
            };
        }
        if first_emulated.is_none() && is_emulated(&instruction) {
            let what = if instruction.flow_control() == FlowControl::ConditionalBranch {
                PlacementKind::StackCheckBranch
            } else {
                PlacementKind::OtherEmulated
            };
            first_emulated = Some(Placement {
                offset,
                emulated: true,
                what,
            });
        }
        // The frame is set up or the body started: nothing later is part of the prologue.
        if matches!(
            instruction.flow_control(),
            FlowControl::Return | FlowControl::UnconditionalBranch
        ) {
            break;
        }
    }
    first_emulated.unwrap_or(Placement {
        offset: 0,
        emulated: false,
        what: PlacementKind::FirstInstruction,
    })
}

/// How many instructions after a call are searched for an emulated one.
const AFTER_CALL_INSTRUCTIONS: usize = 4;

/// Chooses the probe point just after the (first) direct call to `callee` in the code of a
/// function starting at `address`: the first instruction the kernel emulates that the
/// return reaches before any register is written, so the callee's results are still in
/// their registers. Between the call and it there may only be instructions that write
/// nothing but flags (`test`, `cmp`) and nops; a conditional branch is preferred to a
/// multi-byte nop. Otherwise the instruction the call returns to (single-stepped).
/// `None` when the function has no such call, or when the call is its last instruction.
pub fn after_call(code: &[u8], address: u64, callee: u64) -> Option<Placement> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    let mut returns_to = None;
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_call_near() && instruction.near_branch_target() == callee {
            returns_to = Some(instruction.next_ip());
            break;
        }
    }
    // A call that ends the code returns to another function (or never returns).
    let returns_to = returns_to.filter(|&to| to.wrapping_sub(address) < code.len() as u64)?;
    let single_stepped = Placement {
        offset: returns_to.wrapping_sub(address),
        emulated: false,
        what: PlacementKind::AfterCall,
    };
    let mut nop = None;
    for _ in 0..AFTER_CALL_INSTRUCTIONS {
        if !decoder.can_decode() {
            break;
        }
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            break;
        }
        let here = Placement {
            offset: instruction.ip().wrapping_sub(address),
            emulated: true,
            what: PlacementKind::AfterCall,
        };
        if instruction.is_jcc_short_or_near() {
            return Some(here);
        }
        match instruction.mnemonic() {
            Mnemonic::Nop => {
                nop.get_or_insert(here);
            }
            Mnemonic::Test | Mnemonic::Cmp => {}
            _ => break,
        }
    }
    Some(nop.unwrap_or(single_stepped))
}

/// The probe point on the (first) direct call to `callee` in the code of a function
/// starting at `address`: the call instruction itself, which the kernel emulates, with the
/// callee's arguments in their registers. With `called_nops` (see
/// [`kernel_calls_nop_probes`]), the [`NOP5`] just before the call instead when there is
/// one and nothing jumps to the call past it: the registers are the same there. `None`
/// when the function has no such call.
pub fn at_call(code: &[u8], address: u64, callee: u64, called_nops: bool) -> Option<Placement> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    let mut before = None;
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_call_near() && instruction.near_branch_target() == callee {
            let call = instruction.ip();
            if called_nops
                && let Some(nop) = before
                && Flow::of(code, address).is_some_and(|flow| flow.only_falls_into(nop, call))
            {
                return Some(Placement {
                    offset: nop.wrapping_sub(address),
                    emulated: true,
                    what: PlacementKind::CalledNop,
                });
            }
            return Some(Placement {
                offset: call.wrapping_sub(address),
                emulated: true,
                what: PlacementKind::AtCall,
            });
        }
        before = is_nop5(code, address, &instruction).then_some(instruction.ip());
    }
    None
}

/// The 5-byte nop (`nopl 0x0(%rax,%rax,1)`), the only instruction whose uprobe Linux
/// (6.18 and later, x86-64) rewrites, after the first hit, into a call of a trampoline that
/// enters the kernel with a system call (`arch_uprobe_optimize`): a hit then costs no
/// trap. Go's assembler pads jumps and calls with nops so that none crosses a 32-byte
/// boundary, and functions are 32-byte aligned, so a function compiled by one Go release
/// (with the same build flags: `-race`, PGO, `GOAMD64` change the code) has its nops at
/// the same places in every binary.
pub const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];

/// Whether `instruction`, decoded from `code` at `address`, is a [`NOP5`].
fn is_nop5(code: &[u8], address: u64, instruction: &Instruction) -> bool {
    let start = instruction.ip().wrapping_sub(address) as usize;
    code.get(start..start + instruction.len()) == Some(&NOP5[..])
}

/// The first 5-byte nop ([`NOP5`]) in the code of a function starting at `address` that
/// every call passes exactly once: every path from the entry to a `ret` (or to a jump out
/// of the function) goes through it, and no path from it comes back to it. A probe there
/// sees the goroutine (R14), not the arguments. `None` when the function has no such nop,
/// or when its control flow cannot be followed: an indirect jump, a branch into the middle
/// of an instruction, a call into its own body, or a way out that no path from the entry
/// reaches (the runtime resumes a function whose deferred call recovered a panic at a
/// block of its own, after the normal return). Calls are taken to return, which only adds
/// paths.
pub fn once_point(code: &[u8], address: u64) -> Option<Placement> {
    let flow = Flow::of(code, address)?;
    if !flow.exits_reached() {
        return None;
    }
    let offset = flow
        .nops
        .iter()
        .copied()
        .find(|&nop| flow.dominates_exits(nop) && !flow.on_a_cycle(nop))
        .map(|nop| flow.ips[nop].wrapping_sub(address))?;
    Some(Placement {
        offset,
        emulated: true,
        what: PlacementKind::CalledNop,
    })
}

/// Whether the running kernel turns a uprobe on a [`NOP5`] into a call (Linux 6.18 and
/// later on x86-64, or a kernel with that change backported): its symbol
/// `arch_uprobe_optimize` is in `/proc/kallsyms`. Older kernels single-step a multi-byte
/// nop or emulate it no faster than `push rbp`, so probes stay on the entry there. Read
/// once.
pub fn kernel_calls_nop_probes() -> bool {
    static CALLS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CALLS.get_or_init(|| {
        use std::io::BufRead as _;
        let Ok(file) = std::fs::File::open("/proc/kallsyms") else {
            return false;
        };
        std::io::BufReader::new(file)
            .split(b'\n')
            .map_while(Result::ok)
            .any(|line| line.ends_with(b" arch_uprobe_optimize"))
    })
}

/// Where each instruction of a function can go next.
struct Flow {
    /// Each instruction's address, in order.
    ips: Vec<u64>,
    /// Per instruction, the instructions it can go to next (by index).
    next: Vec<Vec<usize>>,
    /// Per instruction, whether it can leave the function (`ret`, a jump outside).
    exits: Vec<bool>,
    /// The instructions that are [`NOP5`].
    nops: Vec<usize>,
}

impl Flow {
    fn of(code: &[u8], address: u64) -> Option<Self> {
        let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
        let mut decoded = Vec::new();
        let mut instruction = Instruction::default();
        while decoder.can_decode() {
            decoder.decode_out(&mut instruction);
            if instruction.is_invalid() {
                return None;
            }
            decoded.push(instruction);
        }
        // No code (bytes past the end of the file): no entry to walk from.
        if decoded.is_empty() {
            return None;
        }
        let ips: Vec<u64> = decoded.iter().map(Instruction::ip).collect();
        let end = address.wrapping_add(code.len() as u64);
        let inside = |target: u64| target.wrapping_sub(address) < code.len() as u64;
        let index = |target: u64| ips.binary_search(&target).ok();
        let mut next = Vec::with_capacity(decoded.len());
        let mut exits = Vec::with_capacity(decoded.len());
        let mut nops = Vec::new();
        for (i, instruction) in decoded.iter().enumerate() {
            if is_nop5(code, address, instruction) {
                nops.push(i);
            }
            // Falling off the end of the code: after a call (of a function that does not
            // return, like a panic), nowhere; after anything else, out of the function.
            let falls_off = instruction.next_ip() == end;
            let fall_through = (!falls_off).then_some(i + 1);
            // A jump's target: inside (by index) or out of the function (`None`); a
            // target between instructions is not followed.
            let target = |to: u64| -> Option<Option<usize>> {
                if inside(to) {
                    index(to).map(Some)
                } else {
                    Some(None)
                }
            };
            let (to, exit): (Vec<usize>, bool) = match instruction.flow_control() {
                // A call into the body would run part of it twice.
                FlowControl::Call
                    if instruction.is_call_near()
                        && inside(instruction.near_branch_target())
                        && instruction.near_branch_target() != address =>
                {
                    return None;
                }
                FlowControl::Call | FlowControl::IndirectCall => {
                    (fall_through.into_iter().collect(), false)
                }
                FlowControl::Next => (fall_through.into_iter().collect(), falls_off),
                FlowControl::Return => (Vec::new(), true),
                FlowControl::UnconditionalBranch if instruction.is_jmp_short_or_near() => {
                    match target(instruction.near_branch_target())? {
                        Some(to) => (vec![to], false),
                        None => (Vec::new(), true),
                    }
                }
                FlowControl::ConditionalBranch if instruction.is_jcc_short_or_near() => {
                    let taken = target(instruction.near_branch_target())?;
                    let to = taken.into_iter().chain(fall_through).collect();
                    (to, taken.is_none() || falls_off)
                }
                // int3 (Go's padding) and ud2: execution stops there.
                FlowControl::Interrupt if instruction.code() == Code::Int3 => (Vec::new(), false),
                FlowControl::Exception => (Vec::new(), false),
                FlowControl::Interrupt => (fall_through.into_iter().collect(), falls_off),
                // Indirect jumps (jump tables), loops on rcx, transactions: not followed.
                _ => return None,
            };
            next.push(to);
            exits.push(exit);
        }
        Some(Self {
            ips,
            next,
            exits,
            nops,
        })
    }

    /// Whether the instruction at `to` is reached only from the one at `from`.
    fn only_falls_into(&self, from: u64, to: u64) -> bool {
        let (Ok(from), Ok(to)) = (self.ips.binary_search(&from), self.ips.binary_search(&to))
        else {
            return false;
        };
        to != 0
            && self
                .next
                .iter()
                .enumerate()
                .all(|(i, next)| i == from || !next.contains(&to))
    }

    /// Whether every way out of the function is reached from its entry.
    fn exits_reached(&self) -> bool {
        let seen = self.reached(&[0], None);
        self.exits
            .iter()
            .zip(&seen)
            .all(|(&exit, &seen)| !exit || seen)
    }

    /// Whether every path from the entry that leaves the function goes through `through`.
    fn dominates_exits(&self, through: usize) -> bool {
        let seen = self.reached(&[0], Some(through));
        seen[through] && (0..seen.len()).all(|i| i == through || !seen[i] || !self.exits[i])
    }

    /// Whether some path from `from` comes back to it.
    fn on_a_cycle(&self, from: usize) -> bool {
        self.reached(&self.next[from], None)[from]
    }

    /// Per instruction, whether a path from one of `starts` reaches it; paths stop at
    /// `stop` (reached, not gone past).
    fn reached(&self, starts: &[usize], stop: Option<usize>) -> Vec<bool> {
        let mut seen = vec![false; self.ips.len()];
        let mut stack = Vec::new();
        for &start in starts {
            if !std::mem::replace(&mut seen[start], true) {
                stack.push(start);
            }
        }
        while let Some(i) = stack.pop() {
            if Some(i) == stop {
                continue;
            }
            for &n in &self.next[i] {
                if !std::mem::replace(&mut seen[n], true) {
                    stack.push(n);
                }
            }
        }
        seen
    }
}

/// Every `ret` in the code of a function starting at `address` (the kernel single-steps
/// them): where other tracers end spans, for comparison.
pub fn returns(code: &[u8], address: u64) -> Vec<Placement> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    let mut found = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.flow_control() == FlowControl::Return {
            found.push(Placement {
                offset: instruction.ip().wrapping_sub(address),
                emulated: false,
                what: PlacementKind::Return,
            });
        }
    }
    found
}

/// Instructions the x86 uprobe code emulates instead of single-stepping.
fn is_emulated(instruction: &Instruction) -> bool {
    match instruction.flow_control() {
        FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch | FlowControl::Call => {
            // Only relative forms are emulated; indirect ones are single-stepped.
            instruction.is_jcc_short_or_near()
                || instruction.is_jmp_short_or_near()
                || instruction.is_call_near()
        }
        _ => instruction.mnemonic() == Mnemonic::Nop || instruction.code() == Code::Push_r64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_push_rbp_after_stack_check() {
        // cmp rsp,[r14+0x10]; jbe +0x20; push rbp; mov rbp,rsp
        let code = [0x49, 0x3b, 0x66, 0x10, 0x76, 0x20, 0x55, 0x48, 0x89, 0xe5];
        let p = entry_point(&code, 0x1000);
        assert_eq!(
            p,
            Placement {
                offset: 6,
                emulated: true,
                what: PlacementKind::PushFramePointer
            }
        );
    }

    #[test]
    fn falls_back_to_stack_check_branch() {
        // cmp rsp,[r14+0x10]; jbe +0x20; sub rsp,0x18; mov [rsp+0x10],rbp
        let code = [
            0x49, 0x3b, 0x66, 0x10, 0x76, 0x20, 0x48, 0x83, 0xec, 0x18, 0x48, 0x89, 0x6c, 0x24,
            0x10,
        ];
        let p = entry_point(&code, 0x1000);
        assert_eq!(
            p,
            Placement {
                offset: 4,
                emulated: true,
                what: PlacementKind::StackCheckBranch
            }
        );
    }

    #[test]
    fn after_a_call_prefers_the_branch_that_tests_its_result() {
        // 0x1000: call 0x2000; test rcx,rcx; jne +0x5f; mov rax,rbx
        let code = [
            0xe8, 0xfb, 0x0f, 0x00, 0x00, 0x48, 0x85, 0xc9, 0x75, 0x5f, 0x48, 0x89, 0xd8,
        ];
        let p = after_call(&code, 0x1000, 0x2000).expect("the call is found");
        assert_eq!((p.offset, p.emulated), (8, true));
        // Go 1.19: a 5-byte nop follows the call, then the test and branch.
        let code = [
            0xe8, 0xfb, 0x0f, 0x00, 0x00, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0x48, 0x85, 0xc9, 0x75,
            0x5f,
        ];
        let p = after_call(&code, 0x1000, 0x2000).expect("the call is found");
        assert_eq!((p.offset, p.emulated), (13, true));
        // A register written first: the return address, single-stepped.
        let code = [0xe8, 0xfb, 0x0f, 0x00, 0x00, 0x48, 0x89, 0xd8, 0x75, 0x5f];
        let p = after_call(&code, 0x1000, 0x2000).expect("the call is found");
        assert_eq!((p.offset, p.emulated), (5, false));
        // Another callee: no call site.
        assert_eq!(after_call(&code, 0x1000, 0x3000), None);
        // On the call itself.
        let p = at_call(&code, 0x1000, 0x2000, true).expect("the call is found");
        assert_eq!(
            (p.offset, p.emulated, p.what),
            (0, true, PlacementKind::AtCall)
        );
        assert_eq!(at_call(&code, 0x1000, 0x3000, true), None);
    }

    /// Code at the top of the address space: the decoder's instruction pointer wraps.
    #[test]
    fn code_at_the_top_of_the_address_space_does_not_overflow() {
        let code = [0x90, 0x90, 0x90, 0xc3, 0x90, 0xc3];
        let address = u64::MAX - 2;
        assert_eq!(returns(&code, address).len(), 2);
        let _ = entry_point(&code, address);
        let _ = at_call(&code, address, 0, true);
        let _ = once_point(&code, address);
        let _ = after_call(&code, address, 0);
    }

    /// No code (a function whose bytes lie past the end of the file): nothing found, no
    /// panic.
    #[test]
    fn no_code_places_nothing() {
        assert_eq!(once_point(&[], 0x1000), None);
        assert_eq!(at_call(&[], 0x1000, 0x2000, true), None);
        assert_eq!(after_call(&[], 0x1000, 0x2000), None);
        assert!(returns(&[], 0x1000).is_empty());
        let _ = entry_point(&[], 0x1000);
        // A call that ends the code returns to no instruction of it.
        assert_eq!(
            after_call(&[0xe8, 0xfb, 0x0f, 0x00, 0x00], 0x1000, 0x2000),
            None
        );
    }

    #[test]
    fn finds_every_ret() {
        // push rbp; test rax,rax; je +1; ret; pop rbp; ret
        let code = [0x55, 0x48, 0x85, 0xc0, 0x74, 0x01, 0xc3, 0x5d, 0xc3];
        let offsets: Vec<u64> = returns(&code, 0x1000).iter().map(|p| p.offset).collect();
        assert_eq!(offsets, [6, 8]);
        assert!(returns(&code, 0x1000).iter().all(|p| !p.emulated));
    }

    #[test]
    fn single_steps_when_nothing_is_emulated() {
        // mov rax,[rsp+8]; ret
        let code = [0x48, 0x8b, 0x44, 0x24, 0x08, 0xc3];
        let p = entry_point(&code, 0x1000);
        assert_eq!(
            p,
            Placement {
                offset: 0,
                emulated: false,
                what: PlacementKind::FirstInstruction
            }
        );
    }

    /// `push rbp` (the prologue's), then what `tail` says, at 0x1000.
    fn function(tail: &[u8]) -> Vec<u8> {
        let mut code = vec![0x55];
        code.extend_from_slice(tail);
        code
    }

    #[test]
    fn the_nop_every_call_passes_once() {
        // 0x1001: test rax,rax; je +5 (to the nop); call 0x2000; nop5; pop rbp; ret:
        // the branch and the call meet at the nop.
        let code = function(&[
            0x48, 0x85, 0xc0, 0x74, 0x05, 0xe8, 0xf5, 0x0f, 0x00, 0x00, 0x0f, 0x1f, 0x44, 0x00,
            0x00, 0x5d, 0xc3,
        ]);
        assert_eq!(
            once_point(&code, 0x1000),
            Some(Placement {
                offset: 11,
                emulated: true,
                what: PlacementKind::CalledNop
            })
        );
        // The branch skips the nop to a second ret: not every call passes it.
        let code = function(&[
            0x48, 0x85, 0xc0, 0x74, 0x07, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0x5d, 0xc3, 0x5d, 0xc3,
        ]);
        assert_eq!(once_point(&code, 0x1000), None);
        // A jump out of the function (a tail call) before the nop is a way out too.
        let code = function(&[
            0x48, 0x85, 0xc0, 0x0f, 0x84, 0x00, 0x10, 0x00, 0x00, 0x0f, 0x1f, 0x44, 0x00, 0x00,
            0x5d, 0xc3,
        ]);
        assert_eq!(once_point(&code, 0x1000), None);
        // In a loop: nop5; dec rcx; jne -10 (back to the nop); pop rbp; ret.
        let code = function(&[
            0x0f, 0x1f, 0x44, 0x00, 0x00, 0x48, 0xff, 0xc9, 0x75, 0xf6, 0x5d, 0xc3,
        ]);
        assert_eq!(once_point(&code, 0x1000), None);
        // After an indirect jump (a jump table) nothing is followed.
        let code = function(&[0xff, 0xe0, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0x5d, 0xc3]);
        assert_eq!(once_point(&code, 0x1000), None);
        // A branch into the middle of the nop.
        let code = function(&[0x74, 0x01, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0x5d, 0xc3]);
        assert_eq!(once_point(&code, 0x1000), None);
        // A way out after the normal return that no branch reaches (where the runtime
        // resumes after a recovered panic): nop5; pop rbp; ret; pop rbp; ret.
        let code = function(&[0x0f, 0x1f, 0x44, 0x00, 0x00, 0x5d, 0xc3, 0x5d, 0xc3]);
        assert_eq!(once_point(&code, 0x1000), None);
        // A call into the function's own body: nop5; call 0x1001 (the nop); pop rbp; ret.
        let code = function(&[
            0x0f, 0x1f, 0x44, 0x00, 0x00, 0xe8, 0xf6, 0xff, 0xff, 0xff, 0x5d, 0xc3,
        ]);
        assert_eq!(once_point(&code, 0x1000), None);
        // Code that runs off its end leaves the function: nop5 only after a branch to
        // the end. test rax,rax; jne +5; nop5; pop rbp
        let code = function(&[
            0x48, 0x85, 0xc0, 0x75, 0x05, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0x5d,
        ]);
        assert_eq!(once_point(&code, 0x1000), None);
        // Other nops are not turned into calls: nopl 0x0(%rax) (4 bytes).
        let code = function(&[0x0f, 0x1f, 0x40, 0x00, 0x5d, 0xc3]);
        assert_eq!(once_point(&code, 0x1000), None);
        // Go's stack check restarts the function after growing the stack: a loop through
        // the entry, not through the nop.
        // 0x1000: cmp rsp,[r14+0x10]; jbe +8; push rbp; nop5; pop rbp; ret;
        // 0x100e: call morestack; jmp 0x1000
        let code = [
            0x49, 0x3b, 0x66, 0x10, 0x76, 0x08, 0x55, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0x5d, 0xc3,
            0xe8, 0xed, 0x0f, 0x00, 0x00, 0xeb, 0xeb,
        ];
        assert_eq!(once_point(&code, 0x1000).map(|p| p.offset), Some(7));
    }

    #[test]
    fn on_a_call_the_nop_before_it_where_the_kernel_calls_nops() {
        // 0x1000: mov rax,rbx; nop5; call 0x2000; ret
        let code = [
            0x48, 0x89, 0xd8, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0xe8, 0xf3, 0x0f, 0x00, 0x00, 0xc3,
        ];
        let p = at_call(&code, 0x1000, 0x2000, true).expect("the call is found");
        assert_eq!((p.offset, p.what), (3, PlacementKind::CalledNop));
        let p = at_call(&code, 0x1000, 0x2000, false).expect("the call is found");
        assert_eq!((p.offset, p.what), (8, PlacementKind::AtCall));
        // A branch to the call itself passes no nop: the call then.
        // 0x1000: je +5 (to the call); nop5; call 0x2000; ret
        let code = [
            0x74, 0x05, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0xe8, 0xf4, 0x0f, 0x00, 0x00, 0xc3,
        ];
        let p = at_call(&code, 0x1000, 0x2000, true).expect("the call is found");
        assert_eq!((p.offset, p.what), (7, PlacementKind::AtCall));
    }
}
