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
/// `None` when the function has no such call.
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
    let returns_to = returns_to?;
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
/// callee's arguments in their registers. `None` when the function has no such call.
pub fn at_call(code: &[u8], address: u64, callee: u64) -> Option<Placement> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_call_near() && instruction.near_branch_target() == callee {
            return Some(Placement {
                offset: instruction.ip().wrapping_sub(address),
                emulated: true,
                what: PlacementKind::AtCall,
            });
        }
    }
    None
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
        let p = at_call(&code, 0x1000, 0x2000).expect("the call is found");
        assert_eq!(
            (p.offset, p.emulated, p.what),
            (0, true, PlacementKind::AtCall)
        );
        assert_eq!(at_call(&code, 0x1000, 0x3000), None);
    }

    /// Code at the top of the address space: the decoder's instruction pointer wraps.
    #[test]
    fn code_at_the_top_of_the_address_space_does_not_overflow() {
        let code = [0x90, 0x90, 0x90, 0xc3, 0x90, 0xc3];
        let address = u64::MAX - 2;
        assert_eq!(returns(&code, address).len(), 2);
        let _ = entry_point(&code, address);
        let _ = at_call(&code, address, 0);
        let _ = after_call(&code, address, 0);
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
}
