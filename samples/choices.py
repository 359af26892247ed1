from django.db import models


class MaterialClass(models.TextChoices):
    CATHODE_ACTIVE = "cathode_active", "Cathode active material"
    SOLID_ELECTROLYTE = "solid_electrolyte", "Solid electrolyte"
    ANODE = "anode", "Anode"
    CARBON = "carbon", "Conductive carbon"
    SUBSTRATE = "substrate", "Substrate"
    PRECURSOR = "precursor", "Precursor chemical"
    OTHER = "other", "Other"


class Unit(models.TextChoices):
    GRAM = "g", "g"
    SQUARE_CM = "cm2", "cm²"
    COUNT = "count", "count"


class SampleKind(models.TextChoices):
    POWDER = "powder", "Powder batch"
    COATED_POWDER = "coated_powder", "Coated powder"
    ANNEALED_POWDER = "annealed_powder", "Annealed aliquot"
    COMPOSITE = "composite", "Composite cathode mix"
    PELLET = "pellet", "Pressed pellet"
    SE_SEPARATOR = "se_separator", "SE separator"
    LI_FOIL = "li_foil", "Li foil piece"
    WAFER = "wafer", "Si witness wafer"
    QCM = "qcm", "QCM crystal"
    THIN_FILM = "thin_film", "Thin-film stack"
    PRECURSOR = "precursor", "Precursor bottle"
    OTHER = "other", "Other"


class SampleState(models.TextChoices):
    AS_RECEIVED = "as_received", "As received"
    COATED = "coated", "Coated"
    ANNEALED = "annealed", "Annealed"
    MIXED = "mixed", "Mixed"
    PRESSED = "pressed", "Pressed"
    CONSUMED = "consumed", "Consumed"
    DISCARDED = "discarded", "Discarded"


class OperationKind(models.TextChoices):
    SPLIT = "split", "Split"
    MIX = "mix", "Mix"
    DEPOSITION = "deposition", "Deposition run"
    ANNEAL = "anneal", "Anneal"
    PRESS = "press", "Press"
    ASSEMBLY = "assembly", "Cell assembly"
    OTHER = "other", "Other process"


class Atmosphere(models.TextChoices):
    GLOVEBOX_AR = "glovebox_ar", "Glovebox (Ar)"
    GLOVEBOX_N2 = "glovebox_n2", "Glovebox (N2)"
    DRY_ROOM = "dry_room", "Dry room"
    AIR = "air", "Ambient air"
    VACUUM = "vacuum", "Vacuum"
