@STRATA@ context --json @FIXTURES@/store docs:intro docs:2 docs:blob docs:odd docs:mixed notes:11
