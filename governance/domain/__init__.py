"""Pure governance domain: lifecycle, records, policy, audit chain, signatures, gates and rollouts."""
