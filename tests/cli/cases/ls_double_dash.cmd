@STRATA@ ls -- @FIXTURES@/digits.region
