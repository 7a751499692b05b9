"""The names both ends of a training protocol must spell alike.

Three kinds of name cross between the coordinator's rounds (:mod:`.logistic_fit`, :mod:`.cox_fit`)
and the station steps (:mod:`.logistic_steps`, :mod:`.cox_steps`, :mod:`.channel`, :mod:`.products`):

* **dealt shares** (``LogisticDealt``, ``CoxDealt``): a value the coordinator computes is split into
  the hub's share PRG(seed_H, label) and the partner's share, value minus that, relayed in the
  partner's payload under the same name;
* **openings** (``CoxOpened``): H and P each return a share under a result key, masked with a mask
  from their pair key labelled by that key (:func:`opening`), so the coordinator adding the two
  sees only the value;
* **PRG labels** under the seed a station shares with the coordinator (``Seeded``) or the key H and
  P share, which the coordinator never holds (``Pair``).

A label used at every Newton iteration is ``name/t`` (:func:`at`): the separator keeps ``M`` at
iteration 10 apart from ``M1`` at iteration 0. Within one seed no two values may share a label,
or two shares would be masked by the same stream (tests/test_training_cox.py checks the lists).
"""

from __future__ import annotations


def at(name: str, t: int) -> str:
    """The label of ``name`` at Newton iteration ``t``."""
    return f"{name}/{t}"


def opening(key: str, t: int) -> str:
    """The pair-mask label of the opening sent under result key ``key`` at iteration ``t``."""
    return at(f"open:{key}", t)


class Seeded:
    """Labels under the seed a station shares with the coordinator (fixed for the job)."""
    ROWS = "rows"                # masks every row a station seals for its peer
    DESIGN_MASK = "b"            # the station's share of the coordinator's mask b over the design
    MEMBERSHIP = "m"             # Cox: H's share of the cohort membership (P receives the rest)
    STRATA_MEMBERSHIP = "mD"     # Cox, strata away from the hub: H's share of m * b over the strata columns
    PADDING = "ext"              # Cox: where a station's rows sit among its dummy rows
    PRODUCT_MASK = "xa"          # interactions: the Beaver triple's masks of the two factors
    PRODUCT_TRIPLE = "xg"        # interactions: the triple's product share
    PRODUCT_TRUNCATION = "xr"    # interactions: the truncation mask


class Pair:
    """Per-iteration labels under the key H and P share (the coordinator never holds it)."""
    PERMUTATION = "pi"           # the secret record order of the iteration's openings
    REFRESH = "d"                # d_t: makes the opened mask b' = pi(b + d_t) fresh each iteration
    OPEN_MASK = "e"              # re-masks the opened linear predictors and columns
    SUMS_MASK = "m"              # logistic: masks the gradient and Hessian shares
    OUTSIDE_NOISE = "u"          # Cox: noise on the rows outside the cohort
    GROUP_ORDER = "sg"           # Cox: the secret order of the event groups
    BLINDS = "rho"               # Cox: multiplicative blinds of the risk-set sums
    PHI_NOISE = "eta"            # Cox: sub-unit noise on the risk-set sums before their blinds
    RISK_SUMS_MASK = "M"         # Cox: additive mask of the blinded vector sums G
    EFRON_S_MASK = "mS"          # Cox (Efron): mask of the tied deaths' sums S^D
    EFRON_G_MASK = "MD"          # Cox (Efron): mask of the tied deaths' vector sums G^D
    LAMBDA_MASK = "MV"           # Cox: mask of the opened cumulative sums Lambda
    EFRON_B_MASK = "MB"          # Cox (Efron): mask of the opened cumulative sums B
    MEANS_MASK = "Mp"            # Cox: mask of the opened risk-set means
    LEFT_MASK = "MpL"            # Cox (Breslow): mask of the opened death-weighted means
    INCREMENT_MASK = "Ml"        # Cox: mask of the opened baseline hazard increments
    WEIGHTS_MASK = "Mu"          # Cox: mask of the opened weighted mask products
    CONCORDANCE_MASK = "MO"      # Cox: mask of the opened concordance counts
    BOOTSTRAP = "boot"           # validation: the resample weights (Poisson, per record)
    BIN_REFRESH = "bz"           # validation: re-randomises the shares of the bin-scaled scores


class LogisticDealt:
    """What the coordinator deals each iteration (:mod:`.logistic_fit` to :mod:`.logistic_steps`)."""
    WEIGHTS = "w"                # w = p(1 - p), in the permuted order
    WEIGHTED_MASK = "u"          # w times the coordinator's mask b'
    RESIDUALS = "r"              # r = y - p


class Validation:
    """What the coordinator deals for the bootstrap validation (:mod:`.validation`), once per job."""
    WEIGHTS = "vw"               # w at the last iterate (fewer bits: resample weights multiply it)
    RESIDUALS = "vr"             # r at the last iterate
    WEIGHTED_MASK = "vu"         # w times the opened mask b'
    MASK_SQUARES = "vq"          # w times b'b'^T per record (upper triangle)
    MASK_RESIDUALS = "vs"        # r times b'
    COEFFICIENTS = "vA"          # the resample models' integer score coefficients A_b
    BIN_MASK = "vm"              # r (plus C's part of the scores): masks the scores opened between H and P
    EVENT_TABLE = "vE"           # per resample (suffix b): one-hot at -floor(r / 2^m) times the outcome
    NONEVENT_TABLE = "vN"        # the same times 1 - outcome
    TRIPLE_A = "va"              # Beaver triples of the AUC's pair counts
    TRIPLE_B = "vb"
    TRIPLE_C = "vc"


class CoxValidation:
    """Cox cross-validation (:mod:`.cox_validation`): what the coordinator deals (under the hub's seed), the
    pair-key labels of H's and P's masks, and the result keys opened to the coordinator."""
    RISK = "cve"                  # r at the last iterate
    RISK_MASK = "cveb"            # r times b'
    DEATHS = "cvd"                # death indicators (0/1)
    RECIPROCAL_Y = "cvaY"         # alpha times the masked vector sums
    RECIPROCAL_FOLD_DEATHS = "cvaF"   # alpha times the masked deaths per fold
    RECIPROCAL = "cva"            # alpha
    RECIPROCAL_DEATHS = "cvaD"    # alpha times the group's deaths
    SQUARE_Y = "cvgY"             # alpha^2 D times the masked vector sums
    SQUARE_FOLD_SUMS = "cvgT"     # alpha^2 D times the masked fold risk sums
    SQUARE = "cvg"                # alpha^2 D
    COEFFICIENTS = "cvA"          # the fold models' integer score coefficients
    BIN_MASK = "cvm"              # r plus C's part of the scores
    ALL_TABLE = "cvTa"            # one-hot at -floor(r / 2^m) for the complete cases
    DEATH_TABLE = "cvTd"          # the same for the deaths
    SLOPE_RECIPROCAL_DEATHS = "cvsD"   # slope: C's reciprocal times the masked deaths,
    SLOPE_RECIPROCAL_FIRST = "cvsY"    # times the masked first moments,
    SLOPE_RECIPROCAL = "cvsa"          # and alone
    # pair-key labels (H and P only)
    GROUP_ORDER = "cvsg"         # the secret order of the event groups
    BLINDS = "cvrho"             # multiplicative blinds of the risk-set sums
    SLOPE_BLINDS = "cvrs"        # multiplicative blinds of the slope grid's risk-set sums
    SLOPE_ORDER = "cvso"         # a fresh secret group order per slope of the grid
    SLOPE_MASK_FIRST = "cvsM"    # masks of the slope grid's first moments
    SLOPE_MASK_DEATHS = "cvsL"   # masks of the deaths per group (slope)
    SLOPE_NOISE = "cvse"         # sub-unit noise on the slope grid's risk-set sums before their blinds
    MASK_Y = "cvM"               # masks of the opened sums: vector sums,
    MASK_FOLD_Y = "cvMF"         # their fold restrictions,
    MASK_FOLD_S = "cvN"          # the fold risk sums,
    MASK_FOLD_DEATHS = "cvL"     # the deaths per fold
    BIN_REFRESH = "cvbz"         # re-randomises the shares of the bin-scaled scores
    # result keys
    OPEN_S, OPEN_Y, OPEN_FOLD_Y, OPEN_FOLD_S, OPEN_FOLD_DEATHS, OPEN_DEATHS, OPEN_SCORE_SUMS = (
        "cvZ", "cvY", "cvYF", "cvT", "cvDF", "cvD", "cvU")
    OPEN_SLOPE, OPEN_SLOPE_FIRST, OPEN_SLOPE_DEATHS, OPEN_EVENT_SCORE, OPEN_PAIRS, OPEN_SLOPE_MASKS = (
        "cvZs", "cvYs", "cvDs", "cvEs", "cvC", "cvSM")


class CoxDealt:
    """What the coordinator deals each iteration (:mod:`.cox_fit` to :mod:`.cox_steps`)."""
    RISK = "e"                   # r = exp(z - max z), per record in the permuted frame
    RISK_MASK = "Ue"             # r times the mask b'
    MASK = "Bs"                  # the mask b' itself
    DEATHS = "dl"                # death indicators (scaled)
    COMPLETE = "k"               # complete-case indicators (at-risk counts)
    DEATH_RISK = "de"            # Efron: r on deaths only
    DEATH_RISK_MASK = "Ud"       # Efron: that times b'
    FRACTION = "a"               # Efron: l / D per grid point
    FRACTION_S = "aS"            # Efron: l / D times the masked S^D
    FRACTION_G = "aG"            # Efron: l / D times the masked G^D
    RECIPROCALS = "al"           # the reciprocals of the blinded sums, weighted per grid point
    USED = "used"                # which grid points count (and their weights)
    FIRST_DEATHS = "dal0"        # deaths times the reciprocal at each group's first point
    RECIPROCAL_Y = "alY"         # the reciprocals times the blinded, masked vector sums
    RECIPROCAL_FRACTION = "ala"  # Efron: the reciprocals times l / D
    RECIPROCAL_R = "alR"         # Breslow: the unweighted reciprocals
    RECIPROCAL_LY = "alLY"       # Breslow: the weighted reciprocals times the vector sums
    WEIGHTS = "w"                # per-record weights w = r (Lambda - d B), opened masked in the last round
    WEIGHTED_MASK = "v"          # those weights times b'
    FIRST_RECIPROCAL = "a0"      # the reciprocal at each group's first point
    INCREMENT_MASKED = "lamA"    # that times the opened, masked increments
    MEANS_MASKED = "qA"          # deaths times the reciprocal times the opened, masked means
    BELOW = "O"                  # concordance: per record, whether its risk bin is below each bin
    CONCORDANCE_WEIGHTS = "kappa"   # concordance: per death, which counts to add


class CoxOpened:
    """Result keys of the Cox station steps, each opened to the coordinator as a masked pair of shares."""
    DEATHS = "deaths"            # deaths per event group (group order)
    EFRON_S = "sd"               # Efron: masked S^D per group
    EFRON_G = "gd"               # Efron: masked G^D per group
    PHI = "phi"                  # blinded risk-set sums per grid point
    Y = "y"                      # blinded, masked vector sums per grid point
    LAMBDA = "v1"                # masked cumulative sums Lambda per record
    EFRON_B = "v2"               # Efron: masked cumulative sums B per record
    MEANS = "abar"               # masked risk-set means
    LEFT = "left"                # Breslow: masked death-weighted means
    CROSS = "cross"              # what removes the masks from the means' product
    LOG_BLINDS = "logrho"        # sum of log2 of the used blinds (log-likelihood)
    INCREMENTS = "lam"           # masked baseline hazard increments
    HESSIAN_FIRST = "first"      # X'WX's share (less the mask terms)
    GRADIENT = "grad"
    WEIGHTED_MASK = "u"          # masked weighted mask products
    SUMS_SQUARES = "sxx"         # first iteration: the cohort's sums of squares and products
    SUMS = "sx"                  # first iteration: the cohort's feature sums
    SUMS_DEATHS = "sxd"          # first iteration: feature sums over the deaths
    BASELINE = "base"            # baseline pieces at the requested times
    AT_RISK = "at_risk"          # at-risk counts at the requested times
    EVENTS_AT = "events_at"      # first iteration: deaths up to each requested time
    STRATA = "strata_n"          # first iteration: complete cases and deaths per stratum
    CONCORDANCE = "counts"       # masked concordance counts
    CONCORDANCE_CORRECTION = "corr"


def names(namespace: type) -> list[str]:
    """The label values a namespace class defines (for the checks that none collide)."""
    return [v for k, v in vars(namespace).items() if k.isupper() and isinstance(v, str)]
