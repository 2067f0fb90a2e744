"""Deterministic demo catalog: the same seed always gives the same products.

Each product type has its own pool of features, so descriptions differ in substance
(warmth, battery life, capacity, fit) and not only in names.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

APPAREL_SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
SHOE_SIZES = ("6", "7", "8", "9", "10", "11", "12")
KIDS_SIZES = ["2T", "3T", "4", "6", "8", "10", "12"]

COLORS = ["black", "white", "navy", "blue", "red", "green", "grey", "beige", "brown", "pink", "yellow", "olive"]
TECH_COLORS = ["black", "white", "silver", "graphite", "blue"]


@dataclass(frozen=True)
class ProductType:
    department: str
    category: str
    noun: str
    price: tuple[float, float]
    brands: tuple[str, ...]
    materials: tuple[str, ...]
    features: tuple[str, ...]
    uses: tuple[str, ...]
    sizes: tuple[str, ...] = ()
    genders: tuple[str, ...] = ("",)
    colors: tuple[str, ...] = tuple(COLORS)
    adjectives: tuple[str, ...] = field(default=("Classic", "Essential", "Everyday", "Premium", "Lightweight"))


OUTDOOR = ("Northpeak", "Trailform", "Columbia", "Patagonia", "The North Face", "Helly Hansen")
SPORT = ("Nike", "Adidas", "Puma", "Asics", "New Balance", "Under Armour", "Reebok")
FASHION = ("Levi's", "Zara", "H&M", "Uniqlo", "Tommy Hilfiger", "Ralph Lauren", "Mango")
AUDIO = ("Sony", "Bose", "JBL", "Sennheiser", "Anker", "Jabra")
TECH = ("Samsung", "Apple", "Lenovo", "Dell", "HP", "Asus", "Logitech")
HOME = ("Ikea", "Casaluna", "Brooklinen", "West Elm", "Muji")
KITCHEN = ("KitchenAid", "Tefal", "Le Creuset", "Cuisinart", "Zwilling", "OXO")
BEAUTY = ("L'Oreal", "Nivea", "The Ordinary", "CeraVe", "Garnier", "Clinique")
TOYS = ("Lego", "Hasbro", "Mattel", "Ravensburger", "Melissa & Doug")

TYPES: tuple[ProductType, ...] = (
    ProductType("Clothing", "Clothing > Jackets", "jacket", (39, 249), OUTDOOR + FASHION,
                ("nylon", "polyester", "recycled polyester", "wool blend", "cotton canvas", "leather"),
                ("waterproof with taped seams", "insulated with synthetic fill for cold days", "windproof shell",
                 "packable into its own pocket", "adjustable hood", "fleece lined for warmth", "breathable membrane",
                 "down filled and very warm", "reflective details for night visibility"),
                ("hiking", "city commuting", "winter walks", "rainy days", "travel"),
                tuple(APPAREL_SIZES), ("men", "women", "unisex")),
    ProductType("Clothing", "Clothing > Dresses", "dress", (25, 180), FASHION,
                ("cotton", "linen", "silk", "viscose", "jersey"),
                ("midi length with a wrap waist", "floral print", "sleeveless and airy", "long sleeves",
                 "side pockets", "A-line cut", "smocked bodice", "machine washable"),
                ("summer parties", "the office", "weddings", "weekend brunch", "holidays"),
                tuple(APPAREL_SIZES[:5]), ("women",)),
    ProductType("Clothing", "Clothing > T-Shirts", "t-shirt", (9, 45), FASHION + SPORT,
                ("organic cotton", "cotton", "merino wool", "bamboo jersey", "polyester"),
                ("crew neck", "v-neck", "relaxed fit", "slim fit", "quick drying", "soft brushed fabric",
                 "graphic print", "pre-shrunk"),
                ("everyday wear", "layering", "the gym", "lounging"),
                tuple(APPAREL_SIZES), ("men", "women", "unisex")),
    ProductType("Clothing", "Clothing > Jeans", "jeans", (35, 140), FASHION,
                ("denim", "stretch denim", "organic cotton denim"),
                ("slim fit", "straight leg", "relaxed fit", "high rise", "stone wash", "raw denim", "ripped knees",
                 "five pockets"),
                ("everyday wear", "casual Fridays", "weekends"),
                ("28", "30", "32", "34", "36", "38"), ("men", "women")),
    ProductType("Clothing", "Clothing > Sweaters", "sweater", (29, 160), FASHION + OUTDOOR,
                ("merino wool", "cashmere", "cotton knit", "lambswool", "alpaca blend"),
                ("cable knit", "crew neck", "turtleneck", "chunky and very warm", "fine knit for layering",
                 "ribbed cuffs"),
                ("cold evenings", "the office", "winter holidays"),
                tuple(APPAREL_SIZES), ("men", "women", "unisex")),
    ProductType("Shoes", "Shoes > Running Shoes", "running shoes", (49, 220), SPORT,
                ("mesh", "knit upper", "synthetic"),
                ("cushioned midsole for long runs", "lightweight racing build", "wide toe box", "trail grip outsole",
                 "stability support for overpronation", "breathable upper", "reflective heel"),
                ("marathon training", "daily jogs", "trail running", "the gym"),
                SHOE_SIZES, ("men", "women")),
    ProductType("Shoes", "Shoes > Boots", "boots", (59, 260), OUTDOOR + FASHION,
                ("leather", "suede", "waterproof nubuck", "rubber"),
                ("waterproof", "insulated for snow", "lug sole with strong grip", "side zip", "steel toe",
                 "ankle height", "shearling lined"),
                ("hiking", "winter", "city wear", "work sites"),
                SHOE_SIZES, ("men", "women")),
    ProductType("Shoes", "Shoes > Sneakers", "sneakers", (39, 180), SPORT + FASHION,
                ("canvas", "leather", "suede", "recycled materials"),
                ("low top", "high top", "cushioned insole", "retro design", "slip-on", "platform sole"),
                ("everyday wear", "casual outfits", "walking"),
                SHOE_SIZES, ("men", "women", "unisex")),
    ProductType("Electronics", "Electronics > Headphones", "headphones", (19, 399), AUDIO,
                ("plastic", "aluminium", "memory foam"),
                ("active noise cancelling", "30 hour battery life", "wireless bluetooth 5.3", "foldable design",
                 "built-in microphone for calls", "sweat resistant", "multipoint pairing", "hi-res audio"),
                ("commuting", "working from home", "workouts", "flights"),
                (), ("",), tuple(TECH_COLORS)),
    ProductType("Electronics", "Electronics > Laptops", "laptop", (399, 2499), TECH,
                ("aluminium", "plastic", "magnesium alloy"),
                ("16 GB RAM", "512 GB SSD", "14 inch display", "16 inch display", "long battery life",
                 "dedicated graphics card for gaming", "lightweight at under 1.3 kg", "backlit keyboard",
                 "touchscreen"),
                ("students", "office work", "gaming", "video editing", "travel"),
                (), ("",), tuple(TECH_COLORS)),
    ProductType("Electronics", "Electronics > Smartphones", "smartphone", (149, 1299), TECH,
                ("glass and aluminium", "plastic"),
                ("triple camera", "5G", "128 GB storage", "256 GB storage", "fast charging",
                 "6.1 inch OLED screen", "water resistant IP68", "two day battery"),
                ("photography", "everyday use", "gaming"),
                (), ("",), tuple(TECH_COLORS)),
    ProductType("Electronics", "Electronics > Smartwatches", "smartwatch", (59, 499), TECH + SPORT[:2],
                ("aluminium", "stainless steel", "silicone"),
                ("heart rate monitor", "GPS", "sleep tracking", "7 day battery", "water resistant to 50 m",
                 "contactless payments"),
                ("running", "fitness tracking", "everyday wear"),
                (), ("",), tuple(TECH_COLORS)),
    ProductType("Home", "Home > Bedding", "duvet cover set", (29, 220), HOME,
                ("cotton percale", "linen", "sateen cotton", "bamboo"),
                ("breathable and cool", "button closure", "pre-washed softness", "king size", "queen size",
                 "hypoallergenic"),
                ("hot sleepers", "guest rooms", "all seasons"),
                ("single", "double", "queen", "king"), ("",)),
    ProductType("Home", "Home > Lamps", "lamp", (19, 199), HOME,
                ("ceramic", "metal", "rattan", "glass", "wood"),
                ("dimmable", "warm white LED", "adjustable arm", "touch control", "USB charging port"),
                ("reading", "bedside tables", "home offices", "living rooms"),
                (), ("",)),
    ProductType("Kitchen", "Kitchen > Cookware", "frying pan", (19, 249), KITCHEN,
                ("stainless steel", "cast iron", "non-stick aluminium", "carbon steel", "copper"),
                ("induction compatible", "oven safe to 260 C", "PFOA free coating", "dishwasher safe",
                 "28 cm diameter", "stay-cool handle"),
                ("searing steaks", "everyday cooking", "omelettes", "stir fries"),
                (), ("",)),
    ProductType("Kitchen", "Kitchen > Coffee Makers", "coffee maker", (29, 599), KITCHEN,
                ("stainless steel", "plastic", "glass"),
                ("built-in grinder", "programmable timer", "milk frother", "15 bar pump", "1.5 litre carafe",
                 "single serve pods"),
                ("espresso lovers", "busy mornings", "offices"),
                (), ("",), tuple(TECH_COLORS)),
    ProductType("Sports", "Sports > Yoga", "yoga mat", (15, 120), SPORT,
                ("natural rubber", "TPE", "cork", "PVC"),
                ("6 mm thick cushioning", "non-slip surface", "alignment lines", "carry strap included",
                 "eco friendly"),
                ("yoga", "pilates", "home workouts"),
                (), ("",)),
    ProductType("Sports", "Sports > Backpacks", "backpack", (25, 220), OUTDOOR + SPORT,
                ("nylon", "recycled polyester", "canvas", "ripstop"),
                ("30 litre capacity", "padded laptop sleeve", "rain cover", "hip belt", "water bottle pockets",
                 "anti-theft zip"),
                ("day hikes", "school", "commuting", "travel"),
                (), ("",)),
    ProductType("Beauty", "Beauty > Skincare", "moisturizer", (6, 89), BEAUTY,
                ("cream", "gel", "lotion"),
                ("hyaluronic acid", "SPF 30", "fragrance free", "for sensitive skin", "niacinamide",
                 "non-comedogenic", "vegan formula"),
                ("dry skin", "oily skin", "daily use", "night routines"),
                (), ("",), ("white",)),
    ProductType("Toys", "Toys > Building Sets", "building set", (9, 199), TOYS,
                ("plastic", "wood"),
                ("500 pieces", "1200 pieces", "ages 6 and up", "ages 9 and up", "motorised parts",
                 "step by step instructions"),
                ("birthday gifts", "family time", "creative play"),
                (), ("",)),
    ProductType("Accessories", "Accessories > Bags", "tote bag", (15, 350), FASHION,
                ("leather", "canvas", "vegan leather", "straw"),
                ("zip closure", "inner pockets", "fits a 13 inch laptop", "detachable strap", "water repellent"),
                ("work", "shopping", "the beach", "travel"),
                (), ("women", "unisex")),
    ProductType("Accessories", "Accessories > Sunglasses", "sunglasses", (12, 260), FASHION + SPORT[:2],
                ("acetate", "metal", "polycarbonate"),
                ("polarized lenses", "UV400 protection", "aviator style", "round frames", "lightweight frame"),
                ("driving", "the beach", "cycling"),
                (), ("men", "women", "unisex")),
)

DEPARTMENTS = sorted({t.department for t in TYPES})


def _price(rng: random.Random, low: float, high: float) -> float:
    raw = rng.uniform(low, high) if rng.random() < 0.5 else low + (high - low) * rng.random() ** 2
    return round(max(low, raw) - 0.01, 2) if raw > 10 else round(raw, 2)


def generate(count: int = 5000, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Yield ``count`` product dicts (fields of :class:`bot.catalog.tables.Product`)."""
    rng = random.Random(seed)
    for i in range(count):
        ptype = TYPES[i % len(TYPES)]
        brand = rng.choice(ptype.brands)
        color = rng.choice(ptype.colors)
        material = rng.choice(ptype.materials)
        gender = rng.choice(ptype.genders)
        features = rng.sample(ptype.features, k=min(3, len(ptype.features)))
        use = rng.choice(ptype.uses)
        adjective = rng.choice(ptype.adjectives)
        who = {"men": "Men's ", "women": "Women's ", "unisex": "Unisex "}.get(gender, "")
        title = f"{brand} {adjective} {who}{color.title() if ptype.colors != ('white',) else ''} {ptype.noun.title()}"
        title = " ".join(title.split())
        description = (
            f"A {material} {ptype.noun} from {brand}, made for {use}. "
            f"{features[0].capitalize()}, {features[1]}"
            + (f" and {features[2]}" if len(features) > 2 else "")
            + "."
        )
        sizes = list(ptype.sizes)
        if sizes and rng.random() < 0.3:
            sizes = sizes[1:-1] or sizes
        stock = 0 if rng.random() < 0.06 else rng.choice([2, 3, 5, 8, 12, 25, 40, 80])
        yield {
            "sku": f"NW-{i + 1:05d}",
            "title": title,
            "description": description,
            "brand": brand,
            "category": ptype.category,
            "price": _price(rng, *ptype.price),
            "currency": "USD",
            "color": color,
            "material": material,
            "gender": gender,
            "sizes": sizes,
            "attributes": {"features": features, "use": use},
            "rating": round(min(5.0, max(2.5, rng.gauss(4.2, 0.45))), 1),
            "rating_count": rng.randint(0, 900),
            "stock": stock,
        }
