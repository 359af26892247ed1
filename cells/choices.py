from django.db import models


class CellFormat(models.TextChoices):
    BULK_PELLET = "bulk_pellet", "Bulk ASSB pellet"
    THIN_FILM = "thin_film", "Thin-film"
    COIN = "coin", "Coin"
    POUCH = "pouch", "Pouch"
    SWAGELOK = "swagelok", "Swagelok"
    SPLIT = "split", "Split cell"


class CellType(models.TextChoices):
    FULL = "full", "Full cell"
    CATHODE_HALF = "cathode_half", "Cathode half cell"
    ANODE_HALF = "anode_half", "Anode half cell"
    LI_SYMMETRIC = "li_symmetric", "Li symmetric"
    BLOCKING = "blocking", "Blocking / SE only"


class AnodeKind(models.TextChoices):
    LI_FOIL = "li_foil", "Li foil"
    LI_IN = "li_in", "Li-In alloy"
    IN_FOIL = "in_foil", "In foil"
    GRAPHITE = "graphite", "Graphite"
    SI = "si", "Si"
    ANODE_FREE = "anode_free", "Anode-free"
    NONE = "none", "None"
    OTHER = "other", "Other"
