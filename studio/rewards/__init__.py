"""Rewards for GRPO: built-in checkers, user functions, their preview on sample completions, gaming detection."""
from studio.rewards.builtin import answer, completion_text, format_ok, reference_answer
from studio.rewards.registry import (BUILTIN, CheckedReward, RewardSpec, build_rewards, check_user_code_allowed,
                                     is_loopback, is_user_reward, needs_reference, parse_specs)

__all__ = ["BUILTIN", "CheckedReward", "RewardSpec", "answer", "build_rewards", "check_user_code_allowed",
           "completion_text", "format_ok", "is_loopback", "is_user_reward", "needs_reference", "parse_specs",
           "reference_answer"]
