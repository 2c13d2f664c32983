@STRATA@ metrics @FIXTURES@/store >m && ! grep -vE '^(# (HELP|TYPE) strata_[a-z_]+ .+|strata_[a-z_]+(\{[^}]*\})? [-+0-9.eE]+)$' m
