"""Generate the shipped example knowledge base and QA sets in examples/data/.

The demo and the tests train a tiny RAG model on these files, so every answer is short and
appears literally in its gold passage; the facts live here as reviewable data tables and the
outputs are regenerated with `python examples/data/generate_kb.py [OUT_DIR]`.
Everything here was written by the project and is released under CC0.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

MIN_WORDS, MAX_WORDS = 25, 70
MAX_ANSWER_WORDS = 3
CSV_PASSAGES = 20
SHUFFLE_SEED = 20261125


@dataclass(frozen=True)
class Entry:
    """One passage with its training question and, optionally, a differently worded eval question."""

    title: str
    text: str
    question: str
    answer: str
    eval_question: str | None = None
    eval_answer: str | None = None


def cap(s: str) -> str:
    """Upper-case the first letter only (keeps names such as 'the Netherlands' intact elsewhere)."""
    return s[:1].upper() + s[1:]


# --- Chemical elements: (name, symbol, atomic number, class, fact, ask for eval) -------------

# fmt: off
ELEMENTS: list[tuple[str, str, int, str, str, bool]] = [
    ("Hydrogen", "H", 1, "a nonmetal", "It is the lightest and most abundant element in the universe, and stars such as the Sun fuse it into helium.", False),
    ("Helium", "He", 2, "a noble gas", "It was first detected in the spectrum of the Sun in 1868 and is used to fill balloons because it is lighter than air.", True),
    ("Lithium", "Li", 3, "an alkali metal", "It is the lightest metal, soft enough to cut with a knife, and is widely used in rechargeable batteries for phones and electric cars.", False),
    ("Carbon", "C", 6, "a nonmetal", "It forms the backbone of all known life, and its pure forms include soft graphite and diamond, the hardest natural material.", False),
    ("Nitrogen", "N", 7, "a nonmetal", "It makes up about 78 percent of the air in Earth's atmosphere and is an essential part of proteins and fertilizers.", False),
    ("Oxygen", "O", 8, "a nonmetal", "It makes up about 21 percent of the air, is needed by animals for respiration, and is released by plants during photosynthesis.", False),
    ("Neon", "Ne", 10, "a noble gas", "It glows a bright reddish orange when electricity passes through it, which made it famous in illuminated advertising signs.", False),
    ("Sodium", "Na", 11, "an alkali metal", "Its symbol comes from the Latin word natrium. It reacts strongly with water and combines with chlorine to form table salt.", False),
    ("Aluminium", "Al", 13, "a post-transition metal", "It is the most abundant metal in Earth's crust, is mainly extracted from bauxite ore, and is used for drink cans and aircraft.", False),
    ("Silicon", "Si", 14, "a metalloid", "It is the second most abundant element in Earth's crust and is the main material of computer chips and solar cells.", False),
    ("Phosphorus", "P", 15, "a nonmetal", "It was discovered by the German alchemist Hennig Brand in 1669, and it is found in matches, fertilizers and the DNA of every living cell.", False),
    ("Sulfur", "S", 16, "a nonmetal", "It is a bright yellow solid often found near volcanoes, and it is used to make sulfuric acid, one of the most produced industrial chemicals.", False),
    ("Chlorine", "Cl", 17, "a halogen", "It is a pale yellow-green toxic gas, and small amounts of it are added to drinking water and swimming pools to kill germs.", False),
    ("Potassium", "K", 19, "an alkali metal", "Its symbol comes from the Latin word kalium. It is vital for nerve signals in the body, and bananas are a well known dietary source.", False),
    ("Calcium", "Ca", 20, "an alkaline earth metal", "It is the most abundant metal in the human body, where it strengthens bones and teeth, and it is found in limestone and chalk.", False),
    ("Titanium", "Ti", 22, "a transition metal", "It is as strong as many steels but much lighter, resists corrosion, and is used in aircraft, spacecraft and medical implants.", False),
    ("Iron", "Fe", 26, "a transition metal", "Its symbol comes from the Latin word ferrum. It is the main ingredient of steel, and Earth's core is thought to consist mostly of iron.", True),
    ("Copper", "Cu", 29, "a transition metal", "Its symbol comes from the Latin word cuprum. It conducts electricity very well, is used in electrical wiring, and forms bronze when mixed with tin.", False),
    ("Zinc", "Zn", 30, "a transition metal", "It is used to coat steel in a process called galvanizing, which prevents rust, and mixed with copper it forms brass.", False),
    ("Silver", "Ag", 47, "a transition metal", "Its symbol comes from the Latin word argentum. It has the highest electrical conductivity of any element and has long been used for coins and jewellery.", True),
    ("Iodine", "I", 53, "a halogen", "It forms dark crystals that give off a violet vapour, and the thyroid gland needs it to produce hormones that control metabolism.", False),
    ("Caesium", "Cs", 55, "an alkali metal", "It is used in atomic clocks, and since 1967 the second has been defined by the radiation of caesium-133 atoms.", False),
    ("Tungsten", "W", 74, "a transition metal", "Its symbol comes from its other name, wolfram. It has the highest melting point of all metals and was long used for light bulb filaments.", False),
    ("Platinum", "Pt", 78, "a transition metal", "It is a dense, precious, silvery metal that resists corrosion and is used in jewellery and in the catalytic converters of cars.", False),
    ("Gold", "Au", 79, "a transition metal", "Its symbol comes from the Latin word aurum. It does not rust or tarnish, which is why it has been prized for coins and jewellery since ancient times.", True),
    ("Mercury", "Hg", 80, "a transition metal", "Its symbol comes from the Latin hydrargyrum, meaning liquid silver. It is the only metal that is liquid at room temperature.", False),
    ("Lead", "Pb", 82, "a post-transition metal", "Its symbol comes from the Latin word plumbum. It is soft and very dense, and because it is toxic it was removed from petrol and paint.", False),
    ("Radium", "Ra", 88, "an alkaline earth metal", "It was discovered by Marie and Pierre Curie in 1898, and its strongly radioactive compounds glow faintly in the dark.", False),
    ("Uranium", "U", 92, "an actinide", "It was discovered by Martin Heinrich Klaproth in 1789 and named after the planet Uranus. It is the main fuel of nuclear power stations.", False),
]
# fmt: on

ELEMENT_TEMPLATES = [
    "{name} is a chemical element with the symbol {sym} and atomic number {z}. It is {cls}. {fact}",
    "The element {lname} has atomic number {z} and is written with the chemical symbol {sym}. It is classed as {cls}. {fact}",
    "With atomic number {z}, {lname} (chemical symbol {sym}) is {cls}. {fact}",
]


def element_entries() -> list[Entry]:
    """Element passages; training questions alternate between symbol and atomic number."""
    out = []
    for i, (name, sym, z, cls, fact, ask_eval) in enumerate(ELEMENTS):
        text = ELEMENT_TEMPLATES[i % len(ELEMENT_TEMPLATES)].format(
            name=name, lname=name.lower(), sym=sym, z=z, cls=cls, fact=fact
        )
        if i % 2 == 0:
            question, answer = f"What is the chemical symbol for {name.lower()}?", sym
        else:
            question, answer = f"What is the atomic number of {name.lower()}?", str(z)
        title = f"{name} (element)" if name == "Mercury" else name
        eval_q = f"Which chemical element has the symbol {sym}?" if ask_eval else None
        out.append(Entry(title, text, question, answer, eval_q, name if ask_eval else None))
    return out


# --- Countries: (name in a sentence, capital, continent, extra fact, eval question, eval answer) --

# fmt: off
COUNTRIES: list[tuple[str, str, str, str, str | None, str | None]] = [
    ("France", "Paris", "Europe", "Its currency is the euro, and the Loire is the longest river that flows entirely within the country.", "Which is the longest river entirely within France?", "Loire"),
    ("Germany", "Berlin", "Europe", "The country uses the euro, and Berlin was divided by a wall from 1961 until 1989.", None, None),
    ("Italy", "Rome", "Europe", "Its currency is the euro, and Rome surrounds Vatican City, the smallest independent state in the world.", None, None),
    ("Spain", "Madrid", "Europe", "Its currency is the euro, and Spanish, also called Castilian, is the official language across the country.", None, None),
    ("Portugal", "Lisbon", "Europe", "The country uses the euro, and Lisbon lies at the mouth of the Tagus river on the Atlantic coast.", None, None),
    ("the Netherlands", "Amsterdam", "Europe", "Although Amsterdam is the constitutional capital, the government and parliament sit in The Hague.", "In which Dutch city do the government and parliament sit?", "The Hague"),
    ("Switzerland", "Bern", "Europe", "Its currency is the Swiss franc, and the country has four national languages: German, French, Italian and Romansh.", "What currency is used in Switzerland?", "Swiss franc"),
    ("Poland", "Warsaw", "Europe", "Its currency is the zloty, and the Vistula, the longest river in the country, flows through Warsaw.", None, None),
    ("Hungary", "Budapest", "Europe", "Its currency is the forint, and Budapest was formed in 1873 by uniting Buda, Obuda and Pest on the banks of the Danube.", None, None),
    ("Greece", "Athens", "Europe", "Athens is one of the oldest cities in the world and is often called the birthplace of democracy.", "Which city is often called the birthplace of democracy?", "Athens"),
    ("Norway", "Oslo", "Europe", "Its currency is the Norwegian krone, and its coast is known for deep, narrow sea inlets called fjords.", None, None),
    ("Ireland", "Dublin", "Europe", "The River Liffey flows through Dublin, and the official languages of the country are Irish and English.", "Which river flows through Dublin?", "Liffey"),
    ("the United Kingdom", "London", "Europe", "Its currency is the pound sterling, and the River Thames flows through London towards the North Sea.", None, None),
    ("Iceland", "Reykjavik", "Europe", "Reykjavik is the northernmost capital of a sovereign state, and the island is known for volcanoes, geysers and glaciers.", None, None),
    ("Russia", "Moscow", "Europe and Asia", "It is the largest country in the world by area, and its currency is the ruble.", "Which country has the largest area in the world?", "Russia"),
    ("Turkey", "Ankara", "Europe and Asia", "Although Istanbul is its largest city, Ankara became the capital in 1923, and the currency is the Turkish lira.", None, None),
    ("Egypt", "Cairo", "Africa", "The Nile flows through Cairo, and the pyramids of Giza stand on the western edge of the greater city.", None, None),
    ("Nigeria", "Abuja", "Africa", "Abuja replaced Lagos as the capital in 1991, and Nigeria is the most populous country in Africa.", "Which city was the capital of Nigeria before Abuja?", "Lagos"),
    ("Ethiopia", "Addis Ababa", "Africa", "Addis Ababa hosts the headquarters of the African Union, and Ethiopia is one of the oldest nations in the world.", None, None),
    ("Tanzania", "Dodoma", "Africa", "Dar es Salaam is its largest city, and Mount Kilimanjaro, the highest peak in Africa, lies in the north of the country.", None, None),
    ("Algeria", "Algiers", "Africa", "It is the largest country in Africa by area, and most of its territory lies within the Sahara Desert.", "What is the largest country in Africa by area?", "Algeria"),
    ("Sudan", "Khartoum", "Africa", "Khartoum stands where the Blue Nile and the White Nile meet to form the main Nile.", None, None),
    ("China", "Beijing", "Asia", "Its currency is the renminbi, whose main unit is the yuan, and the Forbidden City in Beijing was the palace of emperors for five centuries.", None, None),
    ("Japan", "Tokyo", "Asia", "Its currency is the yen, and the country is made up of four main islands, the largest being Honshu.", "What is the currency of Japan?", "yen"),
    ("South Korea", "Seoul", "Asia", "Its currency is the won, and Seoul hosted the Summer Olympic Games in 1988.", None, None),
    ("India", "New Delhi", "Asia", "Its currency is the rupee, and it became the most populous country in the world in 2023, overtaking China.", None, None),
    ("Pakistan", "Islamabad", "Asia", "Islamabad was built as a planned city in the 1960s to replace Karachi as the capital.", None, None),
    ("Thailand", "Bangkok", "Asia", "Its currency is the baht, and it is the only country in Southeast Asia never colonised by a European power.", "What is the currency of Thailand?", "baht"),
    ("Malaysia", "Kuala Lumpur", "Asia", "Its currency is the ringgit, and Kuala Lumpur is known for the Petronas Twin Towers.", None, None),
    ("Nepal", "Kathmandu", "Asia", "Mount Everest lies on its border with China, and eight of the ten highest mountains in the world are in or on the borders of Nepal.", None, None),
    ("Iran", "Tehran", "Asia", "Its currency is the rial, and the country was known to the outside world as Persia until 1935.", "What was Iran called internationally before 1935?", "Persia"),
    ("Iraq", "Baghdad", "Asia", "The Tigris flows through Baghdad, and the land between the Tigris and the Euphrates was ancient Mesopotamia.", None, None),
    ("Kazakhstan", "Astana", "Asia", "It is the largest landlocked country in the world, and its former capital was Almaty.", None, None),
    ("Australia", "Canberra", "Oceania", "Canberra was chosen as a compromise between the rival cities of Sydney and Melbourne, and the currency is the Australian dollar.", None, None),
    ("New Zealand", "Wellington", "Oceania", "Wellington is the southernmost capital of a sovereign state, and the Maori name for the country is Aotearoa.", "What is the Maori name for New Zealand?", "Aotearoa"),
    ("Canada", "Ottawa", "North America", "English and French are its two official languages, and it is the second largest country in the world by area.", None, None),
    ("Mexico", "Mexico City", "North America", "Its currency is the peso, and Mexico City was built on the site of the Aztec capital Tenochtitlan.", "Which Aztec capital once stood where Mexico City is now?", "Tenochtitlan"),
    ("Brazil", "Brasilia", "South America", "Brasilia was inaugurated as the capital in 1960, replacing Rio de Janeiro, and Portuguese is the official language.", "What is the official language of Brazil?", "Portuguese"),
    ("Chile", "Santiago", "South America", "It is a long, narrow country between the Andes and the Pacific Ocean, and the Atacama Desert lies in its north.", None, None),
    ("Peru", "Lima", "South America", "Its currency is the sol, and the Inca citadel of Machu Picchu lies high in its Andes mountains.", "What currency is used in Peru?", "sol"),
    ("Colombia", "Bogota", "South America", "It is the only South American country with coastlines on both the Pacific Ocean and the Caribbean Sea, and it is famous for its coffee.", None, None),
    ("Ecuador", "Quito", "South America", "The country is named after the equator, which passes just north of Quito, and it also governs the Galapagos Islands.", "Which country governs the Galapagos Islands?", "Ecuador"),
    ("Uruguay", "Montevideo", "South America", "Uruguay hosted and won the first FIFA World Cup in 1930, and its currency is the Uruguayan peso.", None, None),
    ("Paraguay", "Asuncion", "South America", "It is a landlocked country, and its two official languages are Spanish and Guarani.", None, None),
]
# fmt: on

COUNTRY_TEMPLATES = [
    "{Country} is a country in {continent}. Its capital city is {capital}. {extra}",
    "The capital of {country} is {capital}. The country is located in {continent}. {extra}",
    "{Country}, a country in {continent}, has its capital at {capital}. {extra}",
]


def country_entries() -> list[Entry]:
    """Country passages; the training question always asks for the capital."""
    out = []
    for i, (country, capital, continent, extra, eval_q, eval_a) in enumerate(COUNTRIES):
        text = COUNTRY_TEMPLATES[i % len(COUNTRY_TEMPLATES)].format(
            Country=cap(country), country=country, capital=capital, continent=continent, extra=extra
        )
        question = (
            f"What is the capital of {country}?" if i % 2 == 0 else f"Which city is the capital of {country}?"
        )
        title = cap(country.removeprefix("the "))
        out.append(Entry(title, text, question, capital, eval_q, eval_a))
    return out


# --- Books: (title, author, year, form, extra fact, eval question, eval answer) ------------------

# fmt: off
BOOKS: list[tuple[str, str, int, str, str, str | None, str | None]] = [
    ("Pride and Prejudice", "Jane Austen", 1813, "novel", "It follows Elizabeth Bennet and her changing opinion of the proud and wealthy Mr Darcy.", "Who is the heroine of Pride and Prejudice?", "Elizabeth Bennet"),
    ("Nineteen Eighty-Four", "George Orwell", 1949, "novel", "It describes a society ruled by the Party and watched over by an all-seeing leader known as Big Brother.", "Who is the all-seeing leader in Nineteen Eighty-Four?", "Big Brother"),
    ("Animal Farm", "George Orwell", 1945, "novella", "In this allegory, farm animals overthrow their human farmer, only for the pigs, led by Napoleon, to become tyrants.", None, None),
    ("Moby-Dick", "Herman Melville", 1851, "novel", "Narrated by Ishmael, it tells of Captain Ahab and his obsessive hunt for a great white whale.", "Which captain hunts the white whale in Moby-Dick?", "Ahab"),
    ("Crime and Punishment", "Fyodor Dostoevsky", 1866, "novel", "It follows Raskolnikov, a poor former student in Saint Petersburg who commits a murder and struggles with his guilt.", None, None),
    ("Don Quixote", "Miguel de Cervantes", 1605, "novel", "Its hero, an ageing gentleman, sets out as a knight with his squire Sancho Panza and attacks windmills he mistakes for giants.", "Who is the squire of Don Quixote?", "Sancho Panza"),
    ("Frankenstein", "Mary Shelley", 1818, "novel", "It tells of the young scientist Victor Frankenstein, who creates a living creature and is horrified by what he has made.", None, None),
    ("Dracula", "Bram Stoker", 1897, "novel", "Written as a series of letters and diary entries, it tells of a Transylvanian count who travels to England.", None, None),
    ("The Great Gatsby", "F. Scott Fitzgerald", 1925, "novel", "Narrated by Nick Carraway, it portrays the mysterious millionaire Jay Gatsby and his longing for Daisy Buchanan.", None, None),
    ("To Kill a Mockingbird", "Harper Lee", 1960, "novel", "Told by young Scout Finch, it follows her father, the lawyer Atticus Finch, as he defends a Black man falsely accused in Alabama.", "Which lawyer is the father of Scout in To Kill a Mockingbird?", "Atticus Finch"),
    ("The Catcher in the Rye", "J.D. Salinger", 1951, "novel", "Its narrator is Holden Caulfield, a troubled teenager who wanders around New York City after leaving his school.", None, None),
    ("One Hundred Years of Solitude", "Gabriel Garcia Marquez", 1967, "novel", "It tells the story of several generations of the Buendia family in the fictional town of Macondo.", "In which fictional town is One Hundred Years of Solitude set?", "Macondo"),
    ("The Hobbit", "J.R.R. Tolkien", 1937, "novel", "It follows Bilbo Baggins on a quest with thirteen dwarves to win back treasure guarded by the dragon Smaug.", "What is the name of the dragon in The Hobbit?", "Smaug"),
    ("Alice's Adventures in Wonderland", "Lewis Carroll", 1865, "novel", "Alice follows a White Rabbit down a rabbit hole into a fantasy world where she meets the Mad Hatter and the Cheshire Cat.", None, None),
    ("Adventures of Huckleberry Finn", "Mark Twain", 1884, "novel", "Huck travels down the Mississippi River on a raft with Jim, a man escaping slavery.", "Down which river does Huckleberry Finn travel on a raft?", "Mississippi"),
    ("A Tale of Two Cities", "Charles Dickens", 1859, "novel", "Set in London and Paris before and during the French Revolution, it opens with the words: It was the best of times, it was the worst of times.", None, None),
    ("Oliver Twist", "Charles Dickens", 1837, "novel", "An orphan in London falls in with a gang of young pickpockets led by Fagin and the Artful Dodger.", None, None),
    ("Wuthering Heights", "Emily Bronte", 1847, "novel", "Set on the Yorkshire moors, it tells of the passionate and destructive love between Heathcliff and Catherine Earnshaw.", None, None),
    ("Les Miserables", "Victor Hugo", 1862, "novel", "It follows the former convict Jean Valjean, who is pursued for years by the police inspector Javert.", None, None),
    ("The Old Man and the Sea", "Ernest Hemingway", 1952, "novella", "It tells of Santiago, an ageing Cuban fisherman who struggles with a giant marlin far out in the Gulf Stream.", "What kind of fish does Santiago struggle with in The Old Man and the Sea?", "marlin"),
    ("The Little Prince", "Antoine de Saint-Exupery", 1943, "novella", "A pilot stranded in the Sahara meets a young prince who has come to Earth from a tiny asteroid.", None, None),
    ("Robinson Crusoe", "Daniel Defoe", 1719, "novel", "Its hero spends 28 years on a remote tropical island after a shipwreck and later rescues a man he names Friday.", None, None),
    ("Gulliver's Travels", "Jonathan Swift", 1726, "novel", "Lemuel Gulliver visits strange lands, including Lilliput, whose people are only about six inches tall.", None, None),
    ("The Metamorphosis", "Franz Kafka", 1915, "novella", "It begins with the travelling salesman Gregor Samsa waking up one morning to find himself transformed into a giant insect.", None, None),
    ("A Study in Scarlet", "Arthur Conan Doyle", 1887, "novel", "It was the first story to feature the detective Sherlock Holmes and his companion Dr John Watson.", None, None),
    ("Around the World in Eighty Days", "Jules Verne", 1872, "novel", "It follows the Englishman Phileas Fogg and his valet Passepartout as they try to circle the globe to win a bet.", "Who tries to travel around the world in eighty days to win a bet?", "Phileas Fogg"),
    ("The Call of the Wild", "Jack London", 1903, "novel", "Its hero is Buck, a domestic dog stolen from California and sold as a sled dog in the Yukon during the Klondike Gold Rush.", None, None),
    ("Things Fall Apart", "Chinua Achebe", 1958, "novel", "It follows Okonkwo, a proud Igbo leader in Nigeria, as British colonial rule and missionaries arrive in his village.", None, None),
]
# fmt: on

BOOK_TEMPLATES = [
    "{title} is a {form} by {author}, first published in {year}. {extra}",
    "{author} wrote the {form} {title}, which was first published in {year}. {extra}",
    "First published in {year}, {title} is a {form} written by {author}. {extra}",
]


def book_entries() -> list[Entry]:
    """Book passages; the training question always asks for the author."""
    out = []
    for i, (title, author, year, form, extra, eval_q, eval_a) in enumerate(BOOKS):
        text = BOOK_TEMPLATES[i % len(BOOK_TEMPLATES)].format(
            title=title, author=author, year=year, form=form, extra=extra
        )
        out.append(Entry(title, text, f"Who wrote {title}?", author, eval_q, eval_a))
    return out


# --- Free-form passages: (title, text, question, answer[, eval question, eval answer]) ----------

# fmt: off
FREE: list[tuple[str, ...]] = [
    # Literature that does not fit the book template.
    ("Hamlet", "Hamlet is a tragedy by William Shakespeare, written around 1600. Prince Hamlet of Denmark seeks revenge on his uncle Claudius, who murdered Hamlet's father and then married his mother.", "Who wrote Hamlet?", "William Shakespeare"),
    ("Romeo and Juliet", "Romeo and Juliet is a tragedy written by William Shakespeare in the 1590s. Set in Verona, it tells of two young lovers whose families, the Montagues and the Capulets, are bitter enemies.", "In which city is Romeo and Juliet set?", "Verona"),
    ("Macbeth", "Macbeth is a tragedy by William Shakespeare, first performed around 1606. A Scottish general, spurred on by three witches and by his ambitious wife, murders King Duncan to seize the throne.", "Which king does Macbeth murder?", "Duncan"),
    ("The Odyssey", "The Odyssey is an ancient Greek epic poem attributed to Homer. It tells of the hero Odysseus and his ten-year journey home to the island of Ithaca after the fall of Troy.", "Who is the hero of the Odyssey?", "Odysseus", "To which island does Odysseus try to return?", "Ithaca"),
    ("The Iliad", "The Iliad is an ancient Greek epic poem attributed to Homer. Set during the Trojan War, it centres on the anger of the Greek warrior Achilles and his quarrel with King Agamemnon.", "To which poet is the Iliad attributed?", "Homer"),
    ("Divine Comedy", "The Divine Comedy is a long narrative poem by the Italian writer Dante Alighieri, completed in 1321. It describes a journey through Hell, Purgatory and Paradise, with the Roman poet Virgil as the first guide.", "Who wrote the Divine Comedy?", "Dante Alighieri"),
    ("War and Peace", "War and Peace is a novel by Leo Tolstoy, published in full as a book in 1869 after appearing in parts in a Russian magazine. It follows several aristocratic families during the Napoleonic Wars, including the French invasion of Russia in 1812.", "Who wrote War and Peace?", "Leo Tolstoy"),
    ("Treasure Island", "Treasure Island is an adventure novel by Robert Louis Stevenson, first published in a magazine in 1881 and 1882 and as a book in 1883. Young Jim Hawkins sails in search of buried treasure and meets the one-legged pirate Long John Silver.", "Who wrote Treasure Island?", "Robert Louis Stevenson", "Which one-legged pirate sails in Treasure Island?", "Long John Silver"),
    # The Solar System and space.
    ("Mercury (planet)", "Mercury is the smallest planet in the Solar System and the closest to the Sun. It has no moons and almost no atmosphere, so its surface swings between scorching days and freezing nights. A year on Mercury lasts only 88 Earth days.", "Which planet is closest to the Sun?", "Mercury"),
    ("Venus", "Venus is the second planet from the Sun and the hottest planet in the Solar System, because its thick carbon dioxide atmosphere traps heat. It spins in the opposite direction to most planets and often shines as the bright morning or evening star.", "Which is the hottest planet in the Solar System?", "Venus", "Which gas makes up most of the atmosphere of Venus?", "carbon dioxide"),
    ("Earth", "Earth is the third planet from the Sun and the only world known to support life. About 71 percent of its surface is covered by water, and it has one natural satellite, the Moon. Earth orbits the Sun about once every 365.25 days.", "What percentage of Earth's surface is covered by water?", "71 percent"),
    ("Mars", "Mars, the fourth planet from the Sun, is called the Red Planet because iron oxide dust gives its surface a reddish colour. It has two small moons, Phobos and Deimos, and hosts Olympus Mons, the tallest volcano in the Solar System.", "Which planet is known as the Red Planet?", "Mars", "What is the tallest volcano in the Solar System?", "Olympus Mons"),
    ("Jupiter", "Jupiter is the fifth planet from the Sun and the largest planet in the Solar System, a gas giant more than twice as massive as all the other planets combined. Its Great Red Spot is a giant storm that has raged for centuries.", "What is the largest planet in the Solar System?", "Jupiter", "What is the name of the giant storm on Jupiter?", "Great Red Spot"),
    ("Saturn", "Saturn is the sixth planet from the Sun and is famous for its bright ring system, made mostly of ice particles. This gas giant has a density lower than that of water, and its largest moon is Titan.", "Which planet is famous for its bright rings?", "Saturn"),
    ("Uranus", "Uranus is the seventh planet from the Sun. It was discovered by William Herschel in 1781, the first planet found with a telescope. The ice giant rotates on its side, with its axis tilted by about 98 degrees.", "Who discovered Uranus?", "William Herschel"),
    ("Neptune", "Neptune is the eighth and farthest planet from the Sun. It was discovered in 1846 after mathematicians predicted its position from irregularities in the orbit of Uranus. Its winds are the fastest in the Solar System, and its largest moon is Triton.", "Which planet is farthest from the Sun?", "Neptune", "In which year was Neptune discovered?", "1846"),
    ("Pluto", "Pluto is a dwarf planet in the Kuiper Belt beyond Neptune. It was discovered by Clyde Tombaugh in 1930 and was counted as the ninth planet until 2006, when astronomers reclassified it. Its largest moon, Charon, is about half its size.", "Who discovered Pluto?", "Clyde Tombaugh"),
    ("Moon", "The Moon is Earth's only natural satellite, orbiting at an average distance of about 384,400 kilometres, and it always shows the same face to Earth. In July 1969 Neil Armstrong became the first person to walk on its surface during the Apollo 11 mission.", "Who was the first person to walk on the Moon?", "Neil Armstrong", "Which mission first landed people on the Moon?", "Apollo 11"),
    ("Io", "Io is the innermost of the four large moons of Jupiter that Galileo Galilei discovered in 1610. Tidal heating makes it the most volcanically active body in the Solar System, with hundreds of active volcanoes.", "What is the most volcanically active body in the Solar System?", "Io"),
    ("Europa", "Europa is one of the Galilean moons of Jupiter. Its smooth surface is made of water ice, and scientists believe a salty liquid ocean lies beneath it, which makes Europa a leading place to search for life beyond Earth.", "Which moon of Jupiter is thought to hide an ocean beneath its icy surface?", "Europa"),
    ("Ganymede", "Ganymede, a moon of Jupiter, is the largest moon in the Solar System and is even bigger than the planet Mercury. It is the only moon known to have its own magnetic field.", "What is the largest moon in the Solar System?", "Ganymede"),
    ("Titan", "Titan is the largest moon of Saturn and the only moon with a thick atmosphere, made mostly of nitrogen. Lakes and seas of liquid methane and ethane lie on its surface, and the Huygens probe landed there in 2005.", "What is the largest moon of Saturn?", "Titan"),
    ("Enceladus", "Enceladus is a small icy moon of Saturn. The Cassini spacecraft observed jets of water vapour and ice erupting from cracks near its south pole, fed by an ocean hidden beneath the surface.", "Which moon of Saturn sprays jets of water from its south pole?", "Enceladus"),
    ("Triton", "Triton is the largest moon of Neptune. It orbits in the opposite direction to the planet's rotation, a retrograde orbit suggesting it was captured from the Kuiper Belt. Voyager 2 photographed its geysers in 1989.", "What is the largest moon of Neptune?", "Triton"),
    ("Sun", "The Sun is the star at the centre of the Solar System. It is a ball of hot plasma that produces energy by fusing hydrogen into helium in its core. Its light takes about eight minutes to reach Earth.", "How long does sunlight take to reach Earth?", "eight minutes", "Which element does the Sun fuse into helium?", "hydrogen"),
    ("Halley's Comet", "Halley's Comet is a bright comet that returns to the inner Solar System about every 76 years. The English astronomer Edmond Halley correctly predicted its return, and it was last seen from Earth in 1986.", "About how often does Halley's Comet return?", "76 years"),
    ("Hubble Space Telescope", "The Hubble Space Telescope was launched in 1990 aboard the Space Shuttle Discovery. Orbiting above the blurring atmosphere, it has taken sharp images of distant galaxies and helped measure how fast the universe is expanding.", "In which year was the Hubble Space Telescope launched?", "1990"),
    ("Sputnik 1", "Sputnik 1 was the first artificial satellite, launched by the Soviet Union on 4 October 1957. The small metal sphere sent out radio beeps for three weeks and started the space race.", "What was the first artificial satellite?", "Sputnik 1"),
    ("Yuri Gagarin", "Yuri Gagarin was a Soviet cosmonaut who became the first human in space on 12 April 1961. His spacecraft, Vostok 1, completed one orbit of Earth in about 108 minutes.", "Who was the first human in space?", "Yuri Gagarin", "What was the name of Yuri Gagarin's spacecraft?", "Vostok 1"),
    # Rivers.
    ("Nile", "The Nile is a major river of northeastern Africa, traditionally considered the longest river in the world at about 6,650 kilometres. It flows north through Sudan and Egypt into the Mediterranean Sea.", "Into which sea does the Nile flow?", "Mediterranean Sea", "Which river is traditionally considered the longest in the world?", "Nile"),
    ("Amazon River", "The Amazon River in South America carries more water than any other river on Earth. It flows east from the Andes across Brazil to the Atlantic Ocean, through the largest tropical rainforest in the world.", "Which river carries more water than any other?", "Amazon", "Into which ocean does the Amazon flow?", "Atlantic Ocean"),
    ("Yangtze", "The Yangtze is the longest river in Asia, flowing about 6,300 kilometres across China to the East China Sea at Shanghai. The Three Gorges Dam on the river is the largest hydroelectric power station in the world.", "What is the longest river in Asia?", "Yangtze"),
    ("Mississippi River", "The Mississippi River is one of the longest rivers in North America. It rises at Lake Itasca in Minnesota and flows south through the United States to the Gulf of Mexico, passing cities such as St. Louis and New Orleans.", "Where does the Mississippi River rise?", "Lake Itasca"),
    ("Danube", "The Danube is the second longest river in Europe. It rises in the Black Forest of Germany and flows east to the Black Sea, passing through four capital cities: Vienna, Bratislava, Budapest and Belgrade.", "Into which sea does the Danube flow?", "Black Sea"),
    ("Volga", "The Volga is the longest river in Europe, flowing about 3,530 kilometres through Russia. It empties into the Caspian Sea and is considered the national river of Russia.", "What is the longest river in Europe?", "Volga"),
    ("Ganges", "The Ganges flows from the Himalayas across northern India and Bangladesh to the Bay of Bengal. It is sacred to Hindus, and the city of Varanasi on its banks is a major place of pilgrimage.", "Into which bay does the Ganges flow?", "Bay of Bengal"),
    ("Congo River", "The Congo River in Central Africa is the deepest river in the world, with depths of more than 220 metres. It crosses the equator twice and has the second greatest flow of any river after the Amazon.", "What is the deepest river in the world?", "Congo"),
    ("Zambezi", "The Zambezi is the fourth longest river in Africa. It flows east to the Indian Ocean, plunging over Victoria Falls on the border between Zambia and Zimbabwe.", "Over which waterfall does the Zambezi plunge?", "Victoria Falls"),
    ("Colorado River", "The Colorado River flows from the Rocky Mountains through the southwestern United States and into Mexico. Over millions of years it carved the Grand Canyon, and the Hoover Dam holds back its water in Lake Mead.", "Which river carved the Grand Canyon?", "Colorado River"),
    ("Seine", "The Seine flows about 777 kilometres through northern France, passing through Paris before reaching the English Channel at Le Havre. Many of the famous bridges of Paris cross it.", "Which river flows through Paris?", "Seine"),
    ("Tigris", "The Tigris rises in the mountains of eastern Turkey and flows through Iraq, past Baghdad and the ruins of ancient Nineveh. It joins the Euphrates to form the Shatt al-Arab, which flows into the Persian Gulf.", "Which river joins the Tigris to form the Shatt al-Arab?", "Euphrates"),
    ("Niger River", "The Niger is the principal river of West Africa. It rises in the Guinea Highlands and makes a great curve through Mali, Niger and Nigeria before reaching the Gulf of Guinea through a vast delta.", "Into which gulf does the Niger flow?", "Gulf of Guinea", "What is the principal river of West Africa?", "Niger"),
    # Mountains, deserts, lakes and oceans.
    ("Mount Everest", "Mount Everest, on the border between Nepal and China, is the highest mountain above sea level at 8,849 metres. Edmund Hillary and Tenzing Norgay made the first confirmed ascent in 1953.", "What is the highest mountain above sea level?", "Mount Everest", "Who climbed Mount Everest with Tenzing Norgay in 1953?", "Edmund Hillary"),
    ("K2", "K2 is the second highest mountain on Earth at 8,611 metres. It stands in the Karakoram range on the border between Pakistan and China and is considered one of the most difficult and dangerous peaks to climb.", "What is the second highest mountain on Earth?", "K2"),
    ("Kilimanjaro", "Mount Kilimanjaro in Tanzania is the highest mountain in Africa at 5,895 metres. It is a dormant volcano with three cones, and its highest point is called Uhuru Peak.", "What is the highest mountain in Africa?", "Kilimanjaro"),
    ("Mont Blanc", "Mont Blanc is the highest mountain in the Alps, rising about 4,800 metres on the border between France and Italy. It was first climbed in 1786, and a road tunnel beneath it links the two countries.", "What is the highest mountain in the Alps?", "Mont Blanc"),
    ("Mount Fuji", "Mount Fuji is the highest mountain in Japan at 3,776 metres. This symmetrical volcano on the island of Honshu last erupted in 1707 and has been a sacred site and a subject of art for centuries.", "What is the highest mountain in Japan?", "Mount Fuji", "In which year did Mount Fuji last erupt?", "1707"),
    ("Mount Vesuvius", "Mount Vesuvius is a volcano on the Bay of Naples in Italy. Its eruption in the year 79 buried the Roman towns of Pompeii and Herculaneum under ash and pumice.", "Which volcano buried Pompeii?", "Vesuvius"),
    ("Sahara", "The Sahara is the largest hot desert in the world, covering much of North Africa. It stretches from the Atlantic Ocean to the Red Sea, and only a small part of it is covered by sand dunes.", "What is the largest hot desert in the world?", "Sahara"),
    ("Atacama Desert", "The Atacama Desert in northern Chile is one of the driest places on Earth, and some of its weather stations have never recorded rain. Its clear, dry skies make it home to large astronomical observatories.", "Which desert in northern Chile is one of the driest places on Earth?", "Atacama"),
    ("Great Barrier Reef", "The Great Barrier Reef, off the coast of Queensland in Australia, is the largest coral reef system in the world. It stretches for more than 2,300 kilometres and can be seen from space.", "Off which Australian state does the Great Barrier Reef lie?", "Queensland", "What is the largest coral reef system in the world?", "Great Barrier Reef"),
    ("Grand Canyon", "The Grand Canyon in Arizona is a steep gorge up to about 1,800 metres deep. Its layered rocks record almost two billion years of geological history, and it became a national park in 1919.", "In which US state is the Grand Canyon?", "Arizona"),
    ("Angel Falls", "Angel Falls in Venezuela is the highest uninterrupted waterfall in the world, with a drop of 979 metres. It plunges from the edge of the Auyan-tepui mountain and is named after the American aviator Jimmie Angel.", "What is the highest uninterrupted waterfall in the world?", "Angel Falls"),
    ("Lake Baikal", "Lake Baikal in Siberia, Russia, is the deepest lake in the world at about 1,642 metres. It is also the oldest, at around 25 million years, and holds about a fifth of the unfrozen fresh surface water on Earth.", "What is the deepest lake in the world?", "Lake Baikal"),
    ("Lake Superior", "Lake Superior is the largest of the Great Lakes of North America and the largest freshwater lake in the world by surface area. It is shared by Canada and the United States.", "Which is the largest of the Great Lakes?", "Lake Superior"),
    ("Lake Victoria", "Lake Victoria is the largest lake in Africa and the largest tropical lake in the world. It is shared by Uganda, Kenya and Tanzania and is the main source of the White Nile.", "What is the largest lake in Africa?", "Lake Victoria"),
    ("Dead Sea", "The Dead Sea, bordered by Jordan, Israel and the West Bank, lies more than 430 metres below sea level, the lowest land point on Earth. Its water is so salty that swimmers float easily.", "What is the lowest land point on Earth?", "Dead Sea"),
    ("Mariana Trench", "The Mariana Trench in the western Pacific Ocean is the deepest known part of the ocean. Its deepest point, the Challenger Deep, lies nearly 11,000 metres below sea level.", "What is the deepest point of the Mariana Trench called?", "Challenger Deep"),
    ("Pacific Ocean", "The Pacific Ocean is the largest and deepest of the oceans on Earth, covering about a third of the surface of the planet. It was named by the explorer Ferdinand Magellan, who found its waters calm.", "Which is the largest ocean on Earth?", "Pacific Ocean", "Which explorer named the Pacific Ocean?", "Ferdinand Magellan"),
    ("Antarctica", "Antarctica is the southernmost continent and the coldest, driest and windiest on Earth. It is covered by an ice sheet that holds most of the fresh water in the world, and its highest peak is the Vinson Massif.", "What is the highest peak in Antarctica?", "Vinson Massif"),
    # Countries with more than one capital.
    ("South Africa", "South Africa, at the southern tip of the continent, has three capital cities: Pretoria is the executive capital, Cape Town the legislative capital and Bloemfontein the judicial capital. Its currency is the rand.", "Which city is the executive capital of South Africa?", "Pretoria", "What is the currency of South Africa?", "rand"),
    ("Bolivia", "Bolivia is a landlocked country in South America. Sucre is its constitutional capital, while La Paz is the seat of government. Lake Titicaca, on its border with Peru, is one of the highest navigable lakes in the world.", "Which city is the seat of government of Bolivia?", "La Paz", "Which lake lies on the border between Bolivia and Peru?", "Lake Titicaca"),
    # Inventions and discoveries.
    ("Telephone", "Alexander Graham Bell was granted a patent for the telephone in 1876. His famous first call was to his assistant, Thomas Watson, in the next room: Mr Watson, come here, I want to see you.", "Who patented the telephone in 1876?", "Alexander Graham Bell"),
    ("Incandescent light bulb", "Thomas Edison developed a long-lasting incandescent light bulb in 1879 at his laboratory in Menlo Park, New Jersey, using a carbon filament. Joseph Swan developed a similar lamp in England at about the same time.", "Who developed a long-lasting light bulb at Menlo Park in 1879?", "Thomas Edison"),
    ("Printing press", "Johannes Gutenberg introduced printing with movable metal type in Europe around 1440 in Mainz, Germany. His most famous work, the Gutenberg Bible, was printed in the 1450s.", "Who introduced printing with movable type in Europe?", "Johannes Gutenberg"),
    ("Airplane", "The Wright brothers, Orville and Wilbur, made the first controlled, powered airplane flight on 17 December 1903 near Kitty Hawk, North Carolina. Their first flight lasted just 12 seconds.", "Near which town did the Wright brothers make their first powered flight?", "Kitty Hawk", "Who made the first powered airplane flight in 1903?", "Wright brothers"),
    ("Morse code", "Samuel Morse helped develop the electric telegraph in the United States and, with Alfred Vail, created Morse code, which represents letters as dots and dashes. In 1844 he sent a telegraph message from Washington to Baltimore.", "Which code represents letters as dots and dashes?", "Morse code"),
    ("Steam engine", "James Watt, a Scottish engineer, greatly improved the steam engine in 1769 by adding a separate condenser. His engines powered factories during the Industrial Revolution.", "Who improved the steam engine by adding a separate condenser?", "James Watt"),
    ("Dynamite", "Dynamite was invented by the Swedish chemist Alfred Nobel in 1867. It made nitroglycerin much safer to handle, and Nobel later used his fortune to found the Nobel Prizes.", "Who invented dynamite?", "Alfred Nobel"),
    ("Penicillin", "Penicillin, the first widely used antibiotic, was discovered by Alexander Fleming in 1928 when he noticed that a mould had killed the bacteria in a culture dish. Howard Florey and Ernst Chain later developed it into a medicine.", "Who discovered penicillin?", "Alexander Fleming"),
    ("Radio", "Guglielmo Marconi, an Italian inventor, developed practical radio communication in the 1890s. In 1901 he sent the first radio signal across the Atlantic Ocean, and he shared the Nobel Prize in Physics in 1909.", "Who sent the first radio signal across the Atlantic?", "Guglielmo Marconi"),
    ("World Wide Web", "The World Wide Web was invented by the British scientist Tim Berners-Lee in 1989 while he worked at CERN near Geneva. He also wrote the first web browser and the first web server.", "Who invented the World Wide Web?", "Tim Berners-Lee", "At which research centre was the World Wide Web invented?", "CERN"),
    ("Television", "The Scottish inventor John Logie Baird gave the first public demonstration of a working television system in London in 1926. Electronic television, developed by Philo Farnsworth and others, later replaced his mechanical design.", "Who first publicly demonstrated television in 1926?", "John Logie Baird"),
    ("Phonograph", "The phonograph, the first device that could both record sound and play it back, was invented by Thomas Edison in 1877. The first words he recorded were from the nursery rhyme Mary Had a Little Lamb.", "What was the first device that could record and play back sound?", "phonograph"),
    ("Smallpox vaccine", "In 1796 the English doctor Edward Jenner showed that infection with cowpox protected people against smallpox, creating the first vaccine. The word vaccine comes from the Latin vacca, meaning cow.", "Who created the first vaccine?", "Edward Jenner", "Which disease did the first vaccine protect against?", "smallpox"),
    ("Polio vaccine", "Jonas Salk developed the first effective polio vaccine, which was declared safe in 1955. Albert Sabin later developed an oral polio vaccine, and mass vaccination has nearly eliminated the disease worldwide.", "Who developed the first effective polio vaccine?", "Jonas Salk"),
    ("Pasteurization", "Pasteurization, named after the French scientist Louis Pasteur, is the process of heating food or drink such as milk to kill harmful microbes. Pasteur also developed vaccines against rabies and anthrax.", "After which scientist is pasteurization named?", "Louis Pasteur"),
    ("Jet engine", "The jet engine was developed independently in the 1930s by Frank Whittle in Britain and Hans von Ohain in Germany. The first jet-powered aircraft to fly, the Heinkel He 178, took off in 1939.", "Which British engineer developed the jet engine?", "Frank Whittle"),
    ("Electric battery", "The Italian physicist Alessandro Volta built the first electric battery, the voltaic pile, in 1800. It was a stack of zinc and copper discs separated by cloth soaked in salt water.", "Who built the first electric battery?", "Alessandro Volta"),
    ("Automobile", "Karl Benz built the Benz Patent-Motorwagen in 1885 and patented it in 1886. It is widely regarded as the first practical automobile powered by an internal combustion engine.", "Who built the first practical automobile?", "Karl Benz"),
    ("Ford Model T", "The Ford Model T, introduced by Henry Ford in 1908, was the first car that many American families could afford. From 1913 Ford built it on a moving assembly line, which greatly reduced its cost.", "Which car did Henry Ford introduce in 1908?", "Model T"),
    ("Braille", "Braille is a tactile writing system used by blind and visually impaired people. It was created by the Frenchman Louis Braille, who was blind himself, and first published in 1829. Each character is made of raised dots.", "Who created the braille writing system?", "Louis Braille"),
    ("X-rays", "X-rays were discovered in 1895 by the German physicist Wilhelm Roentgen. He made an X-ray image of his wife's hand, and in 1901 he received the first Nobel Prize in Physics.", "Who discovered X-rays?", "Wilhelm Roentgen"),
    ("Ballpoint pen", "The modern ballpoint pen was developed by the Hungarian journalist Laszlo Biro and his brother Gyorgy in the late 1930s. In Britain and several other countries, ballpoint pens are still often called biros.", "Who developed the modern ballpoint pen?", "Laszlo Biro"),
    ("Transistor", "The transistor was invented at Bell Labs in 1947 by John Bardeen, Walter Brattain and William Shockley. This tiny switch and amplifier replaced vacuum tubes and made modern electronics possible.", "At which laboratory was the transistor invented?", "Bell Labs"),
    ("Lightning rod", "Benjamin Franklin invented the lightning rod in the 1750s after his experiments showed that lightning is electrical. The metal rod guides lightning safely into the ground. Franklin also invented bifocal glasses.", "Who invented the lightning rod?", "Benjamin Franklin"),
    ("Telescope", "The earliest known patent application for a telescope was filed by the Dutch spectacle maker Hans Lippershey in 1608. A year later Galileo Galilei built his own improved telescopes and used them to study the sky.", "Who filed the earliest known telescope patent?", "Hans Lippershey"),
    ("Mercury thermometer", "The German physicist Daniel Gabriel Fahrenheit invented the mercury thermometer in 1714 and later proposed the Fahrenheit temperature scale, on which water freezes at 32 degrees and boils at 212 degrees.", "Who invented the mercury thermometer?", "Daniel Gabriel Fahrenheit", "At how many degrees Fahrenheit does water boil?", "212"),
    # Animals.
    ("Blue whale", "The blue whale is the largest animal known to have ever lived, reaching about 30 metres in length. Despite its size, it feeds mainly on tiny shrimp-like animals called krill.", "What is the largest animal known to have ever lived?", "blue whale", "What does the blue whale mainly eat?", "krill"),
    ("Cheetah", "The cheetah is the fastest land animal, able to sprint at about 100 kilometres per hour in short bursts. This slender big cat lives mainly in the grasslands of Africa and hunts during the day.", "What is the fastest land animal?", "cheetah"),
    ("Giraffe", "The giraffe is the tallest living animal, with males reaching about 5.5 metres. Its long neck lets it browse leaves from acacia trees, yet it has only seven neck vertebrae, the same number as humans.", "What is the tallest living animal?", "giraffe", "How many neck vertebrae does a giraffe have?", "seven"),
    ("African bush elephant", "The African bush elephant is the largest living land animal. Elephants use their trunks to breathe, smell, drink and grasp objects, and their tusks are enlarged incisor teeth.", "What is the largest living land animal?", "African bush elephant"),
    ("Ostrich", "The ostrich is the largest living bird and lays the largest eggs of any living bird. It cannot fly, but it is the fastest running bird, reaching about 70 kilometres per hour on the African plains.", "What is the largest living bird?", "ostrich"),
    ("Hummingbird", "Hummingbirds are tiny birds of the Americas that hover by beating their wings very rapidly. They are the only birds that can fly backwards, and the bee hummingbird of Cuba is the smallest bird in the world.", "What is the smallest bird in the world?", "bee hummingbird"),
    ("Emperor penguin", "The emperor penguin is the largest species of penguin and lives only in Antarctica. The males keep the eggs warm on their feet through the dark winter while the females feed at sea.", "What is the largest species of penguin?", "emperor penguin"),
    ("Koala", "The koala is a tree-dwelling marsupial native to eastern Australia. It feeds almost entirely on eucalyptus leaves and sleeps for up to 20 hours a day to save energy.", "Which leaves does the koala eat?", "eucalyptus"),
    ("Kangaroo", "Kangaroos are marsupials native to Australia that move by hopping on their powerful hind legs and balance with their long tails. A newborn kangaroo, called a joey, develops in its mother's pouch.", "What is a baby kangaroo called?", "joey"),
    ("Giant panda", "The giant panda is a bear native to the mountain forests of central China. Although it belongs to the order Carnivora, bamboo makes up almost all of its diet, and it eats for many hours each day.", "What makes up almost all of the giant panda's diet?", "bamboo"),
    ("Polar bear", "The polar bear lives around the Arctic Ocean and hunts mainly seals from the sea ice. Under its thick white fur its skin is black, which helps it absorb heat from the sun.", "What does the polar bear mainly hunt?", "seals", "What colour is the skin of a polar bear?", "black"),
    ("Octopus", "An octopus has eight arms, three hearts and blue blood. It is highly intelligent, can change the colour and texture of its skin, and squirts ink to escape from predators.", "How many hearts does an octopus have?", "three"),
    ("Bat", "Bats are the only mammals capable of true sustained flight. Many species find their way and catch insects in the dark by echolocation, listening for the echoes of the high-pitched sounds they make.", "Which mammals are capable of true flight?", "Bats"),
    ("Platypus", "The platypus is a semi-aquatic mammal from eastern Australia with a duck-like bill and a beaver-like tail. It is one of the few mammals that lay eggs, and males have venomous spurs on their hind legs.", "Which Australian mammal has a duck-like bill and lays eggs?", "platypus"),
    ("Axolotl", "The axolotl is a salamander native to lakes near Mexico City. It keeps its gills and lives in water throughout its life, and it can regrow lost limbs and even parts of its heart.", "Which salamander from Mexico can regrow lost limbs?", "axolotl"),
    ("Komodo dragon", "The Komodo dragon is the largest living lizard, growing up to about three metres long. It lives on a few Indonesian islands, including Komodo, and has a venomous bite.", "What is the largest living lizard?", "Komodo dragon"),
    ("Bald eagle", "The bald eagle is the national bird of the United States. Its white head gives it its name, and it feeds mainly on fish, which it snatches from the water with its sharp talons.", "What is the national bird of the United States?", "bald eagle"),
    ("Peregrine falcon", "The peregrine falcon is the fastest animal in the world. When diving to catch other birds in flight, a manoeuvre called a stoop, it can exceed 300 kilometres per hour.", "Which animal is the fastest in the world when diving?", "peregrine falcon"),
    ("Honeybee", "Honeybees live in colonies ruled by a single queen, with thousands of female workers and a few male drones. Worker bees tell each other where flowers are by performing a waggle dance.", "How do honeybees tell each other where flowers are?", "waggle dance"),
    ("Monarch butterfly", "The monarch butterfly is famous for its long migration. Each autumn millions fly from Canada and the United States to forests in central Mexico, and its caterpillars feed only on milkweed.", "What do monarch caterpillars feed on?", "milkweed", "To which country do monarch butterflies migrate each autumn?", "Mexico"),
    ("Salmon", "Salmon hatch in freshwater streams, migrate to the ocean to grow, and then return to the stream where they were born to spawn. They can leap up waterfalls on their journey upstream.", "Which fish return to the stream where they were born to spawn?", "Salmon"),
    ("Camel", "Camels are well adapted to desert life. Their humps store fat, not water, and they can go for long periods without drinking. The dromedary has one hump, while the Bactrian camel has two.", "What do camel humps store?", "fat"),
    ("Orca", "The orca, or killer whale, is the largest member of the dolphin family. Orcas live in family groups called pods and hunt fish, seals and even other whales with coordinated teamwork.", "What is the largest member of the dolphin family?", "orca", "What is a family group of orcas called?", "pods"),
    ("Gorilla", "Gorillas are the largest living primates. They live in the forests of central Africa in groups led by a dominant adult male called a silverback, and they eat mainly plants.", "What is the dominant adult male gorilla called?", "silverback"),
    ("Chimpanzee", "Chimpanzees and bonobos are the closest living relatives of humans. The British primatologist Jane Goodall studied wild chimpanzees in Tanzania from 1960 and discovered that they make and use tools.", "Who studied wild chimpanzees in Tanzania from 1960?", "Jane Goodall"),
    ("Tiger", "The tiger is the largest living cat species. Each tiger has a unique pattern of stripes, and the Bengal tiger is the national animal of India. Unlike most cats, tigers are strong swimmers.", "What is the largest living cat species?", "tiger"),
    ("Lion", "Lions are the only cats that live in social groups, called prides. Most wild lions live in sub-Saharan Africa, and a small population of Asiatic lions survives in the Gir Forest of India.", "What is a social group of lions called?", "pride"),
    ("Grey wolf", "The grey wolf is the largest wild member of the dog family. Wolves live and hunt in packs led by a breeding pair, and the domestic dog descends from an ancient population of wolves.", "From which animal is the domestic dog descended?", "wolves"),
    ("Great white shark", "The great white shark is the largest predatory fish. Like all sharks, its skeleton is made of cartilage rather than bone, and it can sense the tiny electrical fields produced by its prey.", "What is the skeleton of a shark made of?", "cartilage"),
    ("Flamingo", "Flamingos are wading birds that often stand on one leg. Their pink colour comes from carotenoid pigments in the algae and shrimp they eat, and they filter food from the water with their bent bills.", "What gives flamingos their pink colour?", "carotenoid pigments"),
    # The human body.
    ("Heart", "The human heart is a muscular organ with four chambers: the two upper atria and the two lower ventricles. It pumps blood around the body, beating about 60 to 100 times a minute in a resting adult.", "How many chambers does the human heart have?", "four", "What are the two lower chambers of the heart called?", "ventricles"),
    ("Lungs", "The lungs are the main organs of breathing. Inside them, air reaches millions of tiny sacs called alveoli, where oxygen passes into the blood and carbon dioxide passes out. The right lung has three lobes and the left has two.", "What are the tiny air sacs in the lungs called?", "alveoli"),
    ("Liver", "The liver is the largest internal organ of the human body. It produces bile to help digest fats, stores energy as glycogen and removes toxins from the blood. It can regrow after part of it is removed.", "What is the largest internal organ of the human body?", "liver", "Which digestive fluid does the liver produce?", "bile"),
    ("Kidneys", "The two kidneys are bean-shaped organs that filter waste from the blood and produce urine. Each kidney contains about a million tiny filtering units called nephrons.", "What are the filtering units of the kidney called?", "nephrons"),
    ("Brain", "The human brain contains about 86 billion nerve cells called neurons. Its largest part, the cerebrum, controls thought and voluntary movement, while the cerebellum coordinates balance and posture.", "Which part of the brain coordinates balance?", "cerebellum"),
    ("Skin", "The skin is the largest organ of the human body. It protects against germs, helps control body temperature through sweating, and contains the pigment melanin, which gives skin its colour.", "What is the largest organ of the human body?", "skin", "Which pigment gives skin its colour?", "melanin"),
    ("Stomach", "The stomach is a muscular, J-shaped organ that stores and breaks down food. Its lining releases hydrochloric acid and the enzyme pepsin, which begins the digestion of proteins.", "Which acid does the stomach produce?", "hydrochloric acid"),
    ("Small intestine", "The small intestine is the longest part of the digestive tract, about six metres long in adults. Most nutrients are absorbed through its walls, which are covered in tiny finger-like projections called villi.", "What are the finger-like projections in the small intestine called?", "villi"),
    ("Pancreas", "The pancreas lies behind the stomach and has two jobs: it releases digestive enzymes into the small intestine, and it produces the hormone insulin, which controls the level of sugar in the blood.", "Which organ produces insulin?", "pancreas"),
    ("Thyroid gland", "The thyroid is a butterfly-shaped gland in the front of the neck. It produces hormones such as thyroxine that control how fast the body uses energy, and it needs iodine from the diet.", "Which gland in the neck produces thyroxine?", "thyroid"),
    ("Femur", "The femur, or thigh bone, is the longest and strongest bone in the human body. It connects the hip to the knee. An adult human skeleton has 206 bones in total.", "What is the longest bone in the human body?", "femur"),
    ("Stapes", "The stapes, a stirrup-shaped bone in the middle ear, is the smallest bone in the human body. Together with the malleus and incus, it passes sound vibrations from the eardrum to the inner ear.", "What is the smallest bone in the human body?", "stapes"),
    ("Red blood cell", "Red blood cells carry oxygen from the lungs to the tissues. They contain an iron-rich protein called haemoglobin, which gives blood its red colour, and each cell lives for about 120 days.", "Which protein in red blood cells carries oxygen?", "haemoglobin"),
    ("Human eye", "In the human eye, light passes through the cornea and the lens and is focused onto the retina. The retina contains rods, which work in dim light, and cones, which detect colour.", "Which cells in the retina detect colour?", "cones"),
    ("Diaphragm", "The diaphragm is a dome-shaped sheet of muscle beneath the lungs. When it contracts and flattens, the chest cavity expands and air is drawn in, making it the main muscle of breathing.", "What is the main muscle of breathing?", "diaphragm"),
    ("Tooth enamel", "Tooth enamel, the outer layer of the crown of a tooth, is the hardest substance in the human body. It is made mostly of a calcium phosphate mineral called hydroxyapatite.", "What is the hardest substance in the human body?", "tooth enamel"),
    ("Gluteus maximus", "The gluteus maximus, in the buttock, is the largest muscle in the human body. It extends the hip and keeps the body upright when standing, walking and climbing stairs.", "What is the largest muscle in the human body?", "gluteus maximus"),
    # Musical instruments.
    ("Piano", "The piano was invented by Bartolomeo Cristofori in Italy around 1700. A standard modern piano has 88 keys, and pressing a key makes a felt-covered hammer strike the strings.", "How many keys does a standard piano have?", "88", "Who invented the piano?", "Bartolomeo Cristofori"),
    ("Violin", "The violin is the smallest and highest-pitched member of the violin family of string instruments. It has four strings tuned in fifths and is played with a bow. Antonio Stradivari made some of the most prized violins.", "How many strings does a violin have?", "four"),
    ("Harp", "The harp is one of the oldest string instruments, played by plucking strings stretched across a frame. A modern concert harp has 47 strings and seven pedals that change the pitch of the strings.", "How many strings does a concert harp have?", "47"),
    ("Flute", "The flute is a woodwind instrument that produces sound when the player blows across a hole, so it needs no reed. The modern metal concert flute is based on a design by Theobald Boehm from the 1840s.", "Who designed the modern concert flute?", "Theobald Boehm"),
    ("Oboe", "The oboe is a woodwind instrument played with a double reed. Because its pitch is stable and easy to hear, the orchestra traditionally tunes to the note A played by the oboe.", "Which instrument does the orchestra traditionally tune to?", "oboe", "What kind of reed does the oboe use?", "double reed"),
    ("Trumpet", "The trumpet is the highest-pitched instrument in the brass family. The player buzzes the lips into a cup-shaped mouthpiece, and three valves change the length of the tubing to play different notes.", "How many valves does a trumpet have?", "three"),
    ("Tuba", "The tuba is the largest and lowest-pitched instrument of the brass family. It provides the bass line in orchestras and brass bands, and it first appeared in Prussia in the 1830s.", "What is the largest instrument of the brass family?", "tuba"),
    ("Saxophone", "The saxophone was invented by the Belgian instrument maker Adolphe Sax in the 1840s. Although it is usually made of brass, it is a woodwind instrument because it uses a single reed. It is central to jazz.", "Who invented the saxophone?", "Adolphe Sax"),
    ("Timpani", "Timpani, also called kettledrums, are large drums with a bowl-shaped body. Unlike most drums, they can be tuned to definite pitches, often with a pedal that changes the tension of the drumhead.", "What are timpani also called?", "kettledrums"),
    ("Sitar", "The sitar is a long-necked plucked string instrument from India, with movable frets and extra sympathetic strings. Ravi Shankar made it famous around the world in the 1960s.", "Who made the sitar famous around the world?", "Ravi Shankar"),
    ("Bagpipes", "Bagpipes are wind instruments in which air is stored in a bag and squeezed through pipes. The melody is played on the chanter, while the drones sound constant notes. They are strongly associated with Scotland.", "On which pipe of the bagpipes is the melody played?", "chanter"),
    ("Ukulele", "The ukulele is a small four-stringed instrument developed in Hawaii in the nineteenth century from small guitars brought to the islands by Portuguese immigrants. It is usually tuned G, C, E, A.", "Where was the ukulele developed?", "Hawaii"),
    # Sports and games.
    ("Association football", "Association football, or soccer, is played by two teams of eleven players who try to kick a ball into the opposing goal. The first FIFA World Cup was held in Uruguay in 1930, and Uruguay won it.", "Which country hosted the first FIFA World Cup?", "Uruguay", "How many players does a soccer team have on the field?", "eleven"),
    ("Basketball", "Basketball was invented by James Naismith in 1891 in Springfield, Massachusetts, using peach baskets as goals. Each team has five players on the court, and points are scored by shooting the ball through the hoop.", "Who invented basketball?", "James Naismith"),
    ("Baseball", "A standard game of baseball lasts nine innings, in which the two teams take turns batting and fielding. A run is scored when a player touches all four bases, ending at home plate.", "How many innings are in a standard baseball game?", "nine"),
    ("Cricket", "Cricket is played between two teams of eleven players on a field with a 22-yard pitch at its centre. The bowler tries to hit the wicket, and the Ashes is a famous series between England and Australia.", "Which two countries compete for the Ashes?", "England and Australia"),
    ("Tennis", "Tennis has four Grand Slam tournaments: the Australian Open, the French Open, Wimbledon and the US Open. Wimbledon, first held in 1877, is the oldest and is the only one played on grass.", "Which Grand Slam tournament is played on grass?", "Wimbledon"),
    ("Golf", "A standard round of golf consists of 18 holes. Players try to hit a ball into each hole in as few strokes as possible, and finishing a hole one stroke under par is called a birdie.", "How many holes are in a standard round of golf?", "18", "What is a score of one stroke under par called?", "birdie"),
    ("Rugby union", "Rugby union is played by two teams of fifteen players with an oval ball. According to legend, the game began in 1823 when William Webb Ellis picked up the ball during a football match at Rugby School.", "How many players are on a rugby union team?", "fifteen"),
    ("Volleyball", "Volleyball was invented in 1895 by William G. Morgan in Holyoke, Massachusetts. Two teams of six players hit a ball over a high net, and each team may touch the ball up to three times.", "Who invented volleyball?", "William G. Morgan"),
    ("Ice hockey", "Ice hockey is played on a rink by two teams of six players, including a goaltender, who use sticks to shoot a hard rubber disc called a puck. The Stanley Cup is awarded to the champion of the National Hockey League.", "What is the rubber disc in ice hockey called?", "puck"),
    ("Marathon", "The marathon is a long-distance running race of 42.195 kilometres. It is named after the legend of a Greek messenger who ran from the battlefield of Marathon to Athens to announce a victory.", "How long is a marathon in kilometres?", "42.195"),
    ("Modern Olympic Games", "The first modern Olympic Games were held in Athens in 1896, inspired by the French educator Pierre de Coubertin. The Olympic symbol consists of five interlocking rings.", "Where were the first modern Olympic Games held?", "Athens", "Who inspired the modern Olympic Games?", "Pierre de Coubertin"),
    ("Chess", "Chess is a strategy board game for two players on a board of 64 squares. Each player starts with 16 pieces, and the aim is to checkmate the opponent's king.", "How many squares are on a chessboard?", "64"),
    ("Sumo", "Sumo is a form of wrestling from Japan in which a wrestler loses by being forced out of the circular ring, called the dohyo, or by touching the ground with anything other than the soles of the feet.", "What is the sumo wrestling ring called?", "dohyo"),
    ("Judo", "Judo is a martial art and Olympic sport created in Japan by Kano Jigoro in 1882. Its name means the gentle way, and players score by throwing or pinning their opponents.", "Who created judo?", "Kano Jigoro"),
    ("Tour de France", "The Tour de France is an annual multi-stage bicycle race held mainly in France, first run in 1903. The overall leader of the race wears the yellow jersey, called the maillot jaune.", "What colour jersey does the leader of the Tour de France wear?", "yellow"),
    ("Table tennis", "Table tennis, also called ping-pong, is played with small paddles and a light plastic ball on a table divided by a low net. A game is usually won by the first player to reach 11 points.", "What is table tennis also called?", "ping-pong"),
    # Units of measure.
    ("Metre", "The metre is the SI base unit of length. Since 1983 it has been defined as the distance light travels in a vacuum in 1/299,792,458 of a second. It was first meant to be one ten-millionth of the distance from the North Pole to the equator.", "What is the SI base unit of length?", "metre"),
    ("Kilogram", "The kilogram is the SI base unit of mass. From 1889 until 2019 it was defined by a platinum-iridium cylinder kept near Paris; it is now defined using the Planck constant.", "What is the SI base unit of mass?", "kilogram", "Which constant is now used to define the kilogram?", "Planck constant"),
    ("Second (unit)", "The second is the SI base unit of time. It is defined by the radiation of caesium-133 atoms: exactly 9,192,631,770 cycles of that radiation make up one second.", "What is the SI base unit of time?", "second"),
    ("Ampere", "The ampere is the SI base unit of electric current. It is named after the French physicist Andre-Marie Ampere, one of the founders of the science of electromagnetism.", "What is the SI base unit of electric current?", "ampere"),
    ("Kelvin", "The kelvin is the SI base unit of temperature. Its scale starts at absolute zero, the lowest possible temperature, and it is named after the physicist William Thomson, Lord Kelvin. Water freezes at 273.15 kelvins.", "What is the SI base unit of temperature?", "kelvin", "What is the lowest possible temperature called?", "absolute zero"),
    ("Newton (unit)", "The newton is the SI unit of force, named after Isaac Newton. One newton is the force needed to accelerate a mass of one kilogram by one metre per second squared.", "What is the SI unit of force?", "newton"),
    ("Joule", "The joule is the SI unit of energy and work, named after the English physicist James Prescott Joule. One joule is the work done when a force of one newton moves an object one metre.", "What is the SI unit of energy?", "joule"),
    ("Watt (unit)", "The watt is the SI unit of power, equal to one joule per second. It is named after the Scottish engineer James Watt, whose improved steam engines helped drive the Industrial Revolution.", "What is the SI unit of power?", "watt"),
    ("Volt", "The volt is the SI unit of electric potential difference. It is named after Alessandro Volta, who built the first battery, and household electricity in Europe is supplied at about 230 volts.", "What is the SI unit of electric potential difference?", "volt"),
    ("Ohm", "The ohm is the SI unit of electrical resistance and is written with the Greek letter omega. It is named after the German physicist Georg Ohm, whose law relates voltage, current and resistance.", "What is the SI unit of electrical resistance?", "ohm", "Which Greek letter is the symbol of the ohm?", "omega"),
    ("Hertz", "The hertz is the SI unit of frequency, equal to one cycle per second. It honours the German physicist Heinrich Hertz, who first proved the existence of electromagnetic waves in the 1880s.", "What is the SI unit of frequency?", "hertz"),
    ("Pascal (unit)", "The pascal is the SI unit of pressure, equal to one newton per square metre. It is named after the French mathematician Blaise Pascal. Normal air pressure at sea level is about 101,325 pascals.", "What is the SI unit of pressure?", "pascal"),
    ("Nautical mile", "The nautical mile is a unit of distance used at sea and in aviation, defined as exactly 1,852 metres. A speed of one nautical mile per hour is called a knot.", "What is a speed of one nautical mile per hour called?", "knot"),
    ("Light-year", "A light-year is the distance that light travels in a vacuum in one year, about 9.46 trillion kilometres. Despite its name, it is a unit of distance, not of time, and astronomers use it for distances to stars.", "About how many kilometres are in a light-year?", "9.46 trillion"),
    ("Astronomical unit", "The astronomical unit is a unit of length roughly equal to the average distance between Earth and the Sun. In 2012 it was fixed at exactly 149,597,870,700 metres, or about 150 million kilometres.", "Which unit is roughly the average distance between Earth and the Sun?", "astronomical unit"),
    ("Inch", "The inch is a unit of length in the imperial and US customary systems. Since 1959 it has been defined as exactly 2.54 centimetres, and twelve inches make one foot.", "How many centimetres are in an inch?", "2.54"),
    ("Mile", "The international mile is a unit of length equal to 5,280 feet, or exactly 1,609.344 metres. It comes from the Roman mile, which was a thousand paces long.", "How many feet are in a mile?", "5,280"),
    ("Horsepower", "Horsepower is a unit of power introduced by James Watt to compare the output of steam engines with that of draft horses. One mechanical horsepower is about 746 watts.", "Who introduced the horsepower unit?", "James Watt"),
    ("Celsius", "The Celsius temperature scale is named after the Swedish astronomer Anders Celsius, who proposed a similar scale in 1742. On it, water freezes at 0 degrees and boils at 100 degrees at sea level.", "After whom is the Celsius scale named?", "Anders Celsius"),
    # Art.
    ("Mona Lisa", "The Mona Lisa is a portrait painted by Leonardo da Vinci in the early sixteenth century. Famous for the sitter's mysterious smile, it hangs in the Louvre in Paris.", "Who painted the Mona Lisa?", "Leonardo da Vinci", "In which museum does the Mona Lisa hang?", "Louvre"),
    ("The Starry Night", "The Starry Night was painted by Vincent van Gogh in 1889 while he stayed at an asylum in Saint-Remy-de-Provence. It shows a swirling night sky over a village and is held by the Museum of Modern Art in New York.", "Who painted The Starry Night?", "Vincent van Gogh"),
    ("The Last Supper", "The Last Supper is a mural painted by Leonardo da Vinci in the 1490s on a wall of the convent of Santa Maria delle Grazie in Milan. It shows Jesus announcing that one of his apostles will betray him.", "In which city is the Last Supper by Leonardo da Vinci?", "Milan"),
    ("Sistine Chapel ceiling", "Michelangelo painted the ceiling of the Sistine Chapel in the Vatican between 1508 and 1512. Its most famous scene, The Creation of Adam, shows God reaching out to give life to the first man.", "Who painted the ceiling of the Sistine Chapel?", "Michelangelo"),
    ("The Scream", "The Scream is an expressionist work by the Norwegian artist Edvard Munch, who made several versions of it beginning in 1893. It shows an anguished figure against a blood-red sky.", "Who painted The Scream?", "Edvard Munch"),
    ("Guernica", "Guernica is a large black-and-white painting by Pablo Picasso, made in 1937 in response to the bombing of the Basque town of Guernica during the Spanish Civil War. It hangs in the Reina Sofia museum in Madrid.", "Who painted Guernica?", "Pablo Picasso"),
    ("The Persistence of Memory", "The Persistence of Memory is a 1931 painting by the Spanish surrealist Salvador Dali. It is famous for its soft, melting pocket watches draped over a dreamlike landscape.", "Who painted The Persistence of Memory?", "Salvador Dali"),
    ("Girl with a Pearl Earring", "Girl with a Pearl Earring is an oil painting by the Dutch artist Johannes Vermeer from around 1665. It hangs in the Mauritshuis museum in The Hague and is sometimes called the Mona Lisa of the North.", "Who painted Girl with a Pearl Earring?", "Johannes Vermeer"),
    ("The Night Watch", "The Night Watch is a large group portrait of a city militia company painted by Rembrandt in 1642. It is the best known painting in the Rijksmuseum in Amsterdam.", "Who painted The Night Watch?", "Rembrandt", "Which museum holds The Night Watch?", "Rijksmuseum"),
    ("The Birth of Venus", "The Birth of Venus is a painting by the Italian Renaissance artist Sandro Botticelli from the 1480s. It shows the goddess Venus arriving at the shore on a giant scallop shell, and it hangs in the Uffizi Gallery in Florence.", "Who painted The Birth of Venus?", "Sandro Botticelli"),
    ("Water Lilies", "Water Lilies is a series of about 250 oil paintings by the French Impressionist Claude Monet. He painted the flower pond in his garden at Giverny during the last three decades of his life.", "Who painted the Water Lilies series?", "Claude Monet"),
    ("The Great Wave off Kanagawa", "The Great Wave off Kanagawa is a woodblock print by the Japanese artist Hokusai, published around 1831. It shows a huge wave threatening boats, with Mount Fuji in the background.", "Who created The Great Wave off Kanagawa?", "Hokusai"),
    ("American Gothic", "American Gothic is a 1930 painting by Grant Wood showing a farmer holding a pitchfork beside a woman in front of a farmhouse. It is held by the Art Institute of Chicago.", "Who painted American Gothic?", "Grant Wood"),
    ("David (Michelangelo)", "David is a marble statue of the biblical hero carved by Michelangelo between 1501 and 1504. It stands more than five metres tall and is displayed in the Galleria dell'Accademia in Florence.", "In which city is the statue of David by Michelangelo displayed?", "Florence"),
    ("The Thinker", "The Thinker is a bronze sculpture by the French sculptor Auguste Rodin, showing a seated man lost in thought with his chin resting on his hand. It was first conceived as part of The Gates of Hell.", "Who sculpted The Thinker?", "Auguste Rodin"),
    # Composers.
    ("Ludwig van Beethoven", "Ludwig van Beethoven was a German composer born in Bonn in 1770. Although he became almost completely deaf, he wrote nine symphonies; the last, his Ninth Symphony, ends with the choral Ode to Joy.", "In which city was Beethoven born?", "Bonn"),
    ("Wolfgang Amadeus Mozart", "Wolfgang Amadeus Mozart was born in Salzburg in 1756 and composed from the age of five. In his short life he wrote more than 600 works, including the operas The Magic Flute and Don Giovanni.", "In which city was Mozart born?", "Salzburg"),
    ("Johann Sebastian Bach", "Johann Sebastian Bach was a German Baroque composer and organist. He spent his later years in Leipzig, and his works include the Brandenburg Concertos, the Mass in B minor and the St Matthew Passion.", "Who composed the Brandenburg Concertos?", "Johann Sebastian Bach"),
    ("Antonio Vivaldi", "Antonio Vivaldi was an Italian Baroque composer and violinist from Venice. His best known work is The Four Seasons, a set of four violin concertos, and he was also a Catholic priest.", "Who composed The Four Seasons?", "Antonio Vivaldi"),
    ("Pyotr Ilyich Tchaikovsky", "Pyotr Ilyich Tchaikovsky was a Russian composer of the Romantic period. His ballets Swan Lake, The Sleeping Beauty and The Nutcracker remain among the most performed ballets in the world.", "Who composed the ballet Swan Lake?", "Tchaikovsky"),
    ("Frederic Chopin", "Frederic Chopin was a Polish composer and virtuoso pianist who lived much of his life in Paris. Almost all of his works, including nocturnes, mazurkas and polonaises, are written for solo piano.", "For which instrument did Chopin write almost all of his works?", "piano"),
    ("George Frideric Handel", "George Frideric Handel was a German-born Baroque composer who spent most of his career in London. His oratorio Messiah, first performed in Dublin in 1742, includes the famous Hallelujah chorus.", "Who composed Messiah?", "George Frideric Handel", "In which city was Messiah first performed?", "Dublin"),
    ("Joseph Haydn", "Joseph Haydn was an Austrian composer of the Classical period, often called the father of the symphony for his 104 symphonies. He worked for many years for the wealthy Esterhazy family.", "Who is called the father of the symphony?", "Joseph Haydn"),
    ("Richard Wagner", "Richard Wagner was a German composer known for his long, complex operas. His cycle of four operas, The Ring of the Nibelung, is performed at the festival theatre he built in Bayreuth.", "In which town did Wagner build his festival theatre?", "Bayreuth"),
    ("Giuseppe Verdi", "Giuseppe Verdi was an Italian opera composer whose works include Rigoletto, La traviata and Aida. Aida was first performed in Cairo in 1871, and Verdi became a national hero in Italy.", "Who composed the opera Aida?", "Giuseppe Verdi"),
    ("Igor Stravinsky", "Igor Stravinsky was a Russian-born composer whose ballet The Rite of Spring caused a near riot at its premiere in Paris in 1913. He also wrote the ballets The Firebird and Petrushka.", "Who composed The Rite of Spring?", "Igor Stravinsky"),
    ("George Gershwin", "George Gershwin was an American composer who blended classical music with jazz. His works include Rhapsody in Blue, first performed in 1924, and the opera Porgy and Bess.", "Who composed Rhapsody in Blue?", "George Gershwin"),
    ("Gustav Holst", "Gustav Holst was an English composer best known for The Planets, an orchestral suite of seven movements, each named after a planet and its astrological character, such as Mars, the Bringer of War.", "Who composed The Planets suite?", "Gustav Holst"),
    # Scientists.
    ("Isaac Newton", "Isaac Newton was an English mathematician and physicist who described the laws of motion and universal gravitation in his book Principia, published in 1687. He also studied light and helped invent calculus.", "Which book by Isaac Newton describes the laws of motion?", "Principia"),
    ("Albert Einstein", "Albert Einstein was a German-born physicist who developed the theory of relativity. He received the 1921 Nobel Prize in Physics for his explanation of the photoelectric effect.", "Who developed the theory of relativity?", "Albert Einstein", "For what did Einstein receive the Nobel Prize?", "photoelectric effect"),
    ("Charles Darwin", "Charles Darwin was an English naturalist who proposed the theory of evolution by natural selection. His ideas grew from his voyage on HMS Beagle and were published in On the Origin of Species in 1859.", "Who proposed the theory of evolution by natural selection?", "Charles Darwin", "On which ship did Charles Darwin sail around the world?", "HMS Beagle"),
    ("Marie Curie", "Marie Curie was a Polish-born physicist and chemist who pioneered research on radioactivity. She was the first woman to win a Nobel Prize and the first person to win Nobel Prizes in two sciences, physics and chemistry.", "Who was the first woman to win a Nobel Prize?", "Marie Curie"),
    ("Galileo Galilei", "Galileo Galilei was an Italian astronomer who in 1610 used a telescope to discover four moons of Jupiter and to observe the phases of Venus. His support for a Sun-centred universe led to his trial by the Roman Inquisition in 1633.", "Which astronomer was tried by the Roman Inquisition in 1633?", "Galileo"),
    ("Nicolaus Copernicus", "Nicolaus Copernicus was a Polish astronomer who proposed that Earth and the other planets orbit the Sun. His book On the Revolutions of the Heavenly Spheres was published in 1543, the year of his death.", "Who proposed in 1543 that the planets orbit the Sun?", "Nicolaus Copernicus"),
    ("Johannes Kepler", "Johannes Kepler was a German astronomer who discovered three laws of planetary motion, showing that planets move in elliptical orbits around the Sun. He built on the careful observations of Tycho Brahe.", "Who discovered the three laws of planetary motion?", "Johannes Kepler"),
    ("Gregor Mendel", "Gregor Mendel was an Augustinian friar who founded the science of genetics. By crossing thousands of pea plants in his monastery garden in Brno, he discovered the basic rules of heredity.", "Which plants did Gregor Mendel study?", "pea plants"),
    ("Dmitri Mendeleev", "Dmitri Mendeleev was a Russian chemist who published the first widely recognised periodic table of the elements in 1869. He left gaps for undiscovered elements and correctly predicted their properties.", "Who published the first widely recognised periodic table?", "Dmitri Mendeleev"),
    ("DNA double helix", "The double helix structure of DNA was described in 1953 by James Watson and Francis Crick. Their model relied on X-ray images made by Rosalind Franklin, especially the famous Photo 51.", "Whose X-ray images helped reveal the structure of DNA?", "Rosalind Franklin", "What is the shape of the DNA molecule?", "double helix"),
    ("Michael Faraday", "Michael Faraday was an English scientist who discovered electromagnetic induction in 1831, the principle behind electric generators and transformers. The farad, the unit of capacitance, is named after him.", "Who discovered electromagnetic induction?", "Michael Faraday"),
    ("Ernest Rutherford", "Ernest Rutherford was a New Zealand-born physicist who discovered the atomic nucleus in 1911 through his gold foil experiment, in which some alpha particles bounced back from a thin sheet of gold.", "Who discovered the atomic nucleus?", "Ernest Rutherford"),
    ("Edwin Hubble", "Edwin Hubble was an American astronomer who showed that many nebulae are galaxies far beyond the Milky Way. In 1929 he found that galaxies are moving away from us, evidence that the universe is expanding.", "Which astronomer found evidence that the universe is expanding?", "Edwin Hubble"),
    ("Alan Turing", "Alan Turing was an English mathematician and a founder of computer science who described the Turing machine in 1936. During the Second World War he helped break the German Enigma code at Bletchley Park.", "Which German code did Alan Turing help to break?", "Enigma", "Where did Alan Turing work during the Second World War?", "Bletchley Park"),
    ("Ada Lovelace", "Ada Lovelace was an English mathematician who wrote what is often called the first computer program, an algorithm for the Analytical Engine proposed by Charles Babbage, published in 1843.", "For which machine did Ada Lovelace write the first program?", "Analytical Engine"),
    ("Archimedes", "Archimedes was a Greek mathematician and inventor from Syracuse in Sicily. He discovered the principle of buoyancy, according to legend while taking a bath, and is said to have shouted Eureka.", "What did Archimedes reportedly shout?", "Eureka"),
    ("Euclid", "Euclid was a Greek mathematician who lived in Alexandria around 300 BC. His book Elements organised the geometry of his time and was used as a textbook for more than two thousand years.", "What is the name of the geometry book by Euclid?", "Elements"),
    ("Carl Linnaeus", "Carl Linnaeus was a Swedish botanist who formalised binomial nomenclature, the system of giving each species a two-part Latin name such as Homo sapiens. He is known as the father of modern taxonomy.", "Who formalised binomial nomenclature?", "Carl Linnaeus"),
    ("Antoine Lavoisier", "Antoine Lavoisier was a French chemist often called the father of modern chemistry. He named oxygen and hydrogen and showed that mass is conserved in chemical reactions.", "Who is often called the father of modern chemistry?", "Antoine Lavoisier"),
    ("Max Planck", "Max Planck was a German physicist who founded quantum theory in 1900 by proposing that energy is emitted in small packets called quanta. The Planck constant is named after him.", "Who founded quantum theory?", "Max Planck"),
    # Landmarks.
    ("Eiffel Tower", "The Eiffel Tower is a wrought-iron lattice tower in Paris, built by the company of Gustave Eiffel for the World's Fair of 1889. It is about 330 metres tall and was the tallest structure in the world until 1930.", "For which event was the Eiffel Tower built?", "World's Fair", "In which year was the Eiffel Tower completed?", "1889"),
    ("Statue of Liberty", "The Statue of Liberty stands on Liberty Island in New York Harbor. It was a gift from the people of France, designed by Frederic Auguste Bartholdi with an inner frame by Gustave Eiffel, and was dedicated in 1886.", "Which country gave the Statue of Liberty to the United States?", "France"),
    ("Great Wall of China", "The Great Wall of China is a series of fortifications built across northern China over many centuries to protect against invasions. Most of the well preserved sections seen today were built during the Ming dynasty.", "During which dynasty were most surviving sections of the Great Wall built?", "Ming"),
    ("Taj Mahal", "The Taj Mahal is a white marble mausoleum in Agra, India. The Mughal emperor Shah Jahan had it built in memory of his wife Mumtaz Mahal, and construction began in 1632.", "Which emperor built the Taj Mahal?", "Shah Jahan", "In which Indian city is the Taj Mahal?", "Agra"),
    ("Colosseum", "The Colosseum in Rome is the largest ancient amphitheatre ever built. Completed in the year 80 under the emperor Titus, it held tens of thousands of spectators for gladiator fights and public shows.", "Under which emperor was the Colosseum completed?", "Titus"),
    ("Machu Picchu", "Machu Picchu is a fifteenth-century Inca citadel high in the Andes of Peru. It was brought to international attention in 1911 by the American explorer Hiram Bingham.", "Which civilisation built Machu Picchu?", "Inca", "Which explorer brought Machu Picchu to international attention?", "Hiram Bingham"),
    ("Great Pyramid of Giza", "The Great Pyramid of Giza was built as a tomb for the pharaoh Khufu around 2560 BC. It is the oldest of the Seven Wonders of the Ancient World and the only one still largely standing.", "For which pharaoh was the Great Pyramid built?", "Khufu"),
    ("Stonehenge", "Stonehenge is a prehistoric monument on Salisbury Plain in Wiltshire, England, made of a ring of huge standing stones. It was built in stages from around 3000 BC, and its stones line up with the sunrise at the summer solstice.", "On which plain does Stonehenge stand?", "Salisbury Plain"),
    ("Big Ben", "Big Ben is the nickname of the great bell of the clock at the Palace of Westminster in London. The tower that holds it was renamed the Elizabeth Tower in 2012 to mark the Diamond Jubilee of Queen Elizabeth II.", "What is the tower that holds Big Ben called?", "Elizabeth Tower"),
    ("Sydney Opera House", "The Sydney Opera House is a performing arts centre on Sydney Harbour with a roof of white, shell-like sails. It was designed by the Danish architect Jorn Utzon and opened in 1973.", "Who designed the Sydney Opera House?", "Jorn Utzon"),
    ("Christ the Redeemer", "Christ the Redeemer is a huge Art Deco statue of Jesus on top of Corcovado mountain overlooking Rio de Janeiro, Brazil. It was completed in 1931 and is about 30 metres tall, not counting its pedestal.", "Which city does the statue of Christ the Redeemer overlook?", "Rio de Janeiro"),
    ("Petra", "Petra is an ancient city in southern Jordan famous for buildings carved directly into pink sandstone cliffs. It was the capital of the Nabataean kingdom, and its best known building is called the Treasury.", "Which kingdom had Petra as its capital?", "Nabataean"),
    ("Angkor Wat", "Angkor Wat in Cambodia is the largest religious monument in the world. It was built in the twelfth century by the Khmer king Suryavarman II, first as a Hindu temple and later used for Buddhist worship.", "Which Khmer king built Angkor Wat?", "Suryavarman II"),
    ("Parthenon", "The Parthenon is a temple on the Acropolis of Athens dedicated to the goddess Athena. It was completed in 438 BC and is regarded as a high point of classical Greek architecture.", "To which goddess is the Parthenon dedicated?", "Athena"),
    ("Leaning Tower of Pisa", "The Leaning Tower of Pisa is the bell tower of the cathedral of Pisa in Italy. It began to tilt during construction in the twelfth century because of soft ground, and engineers stabilised it between 1990 and 2001.", "Why does the Leaning Tower of Pisa tilt?", "soft ground"),
    ("Golden Gate Bridge", "The Golden Gate Bridge is a suspension bridge spanning the strait between San Francisco Bay and the Pacific Ocean. It opened in 1937 and is painted a colour called International Orange.", "What is the colour of the Golden Gate Bridge called?", "International Orange"),
    ("Burj Khalifa", "The Burj Khalifa in Dubai has been the tallest building in the world since it opened in 2010. It reaches 828 metres and has more than 160 storeys.", "What is the tallest building in the world?", "Burj Khalifa"),
    ("Alhambra", "The Alhambra is a palace and fortress complex in Granada, Spain. Built mainly by the Nasrid rulers in the thirteenth and fourteenth centuries, it is famous for its Islamic architecture, courtyards and fountains.", "In which Spanish city is the Alhambra?", "Granada"),
]
# fmt: on


def free_entries() -> list[Entry]:
    """Hand-written passages whose facts do not share one sentence shape."""
    out = []
    for row in FREE:
        if len(row) not in (4, 6):
            raise ValueError(f"FREE entry {row[0]!r}: expected 4 or 6 fields, got {len(row)}")
        out.append(Entry(*row))
    return out


def all_entries() -> list[Entry]:
    """Every passage in a fixed shuffled order, so each slice (e.g. the CSV sample) mixes topics."""
    entries = element_entries() + country_entries() + book_entries() + free_entries()
    random.Random(SHUFFLE_SEED).shuffle(entries)
    return entries


def word_count(s: str) -> int:
    return len(s.split())


def check(entries: list[Entry]) -> None:
    """Refuse to write data that would break the tests or make EM unmeasurable."""
    problems = []
    seen_titles: set[str] = set()
    train_questions = {e.question for e in entries}
    if len(train_questions) != len(entries):
        problems.append("training questions must be unique")
    eval_questions = [e.eval_question for e in entries if e.eval_question is not None]
    if len(set(eval_questions)) != len(eval_questions):
        problems.append("eval questions must be unique")
    for e in entries:
        n = word_count(e.text)
        if not MIN_WORDS <= n <= MAX_WORDS:
            problems.append(f"{e.title!r}: text has {n} words, want {MIN_WORDS}-{MAX_WORDS}")
        if e.title in seen_titles:
            problems.append(f"{e.title!r}: duplicate title")
        seen_titles.add(e.title)
        pairs = [(e.question, e.answer)]
        if e.eval_question is not None:
            pairs.append((e.eval_question, e.eval_answer or ""))
            if e.eval_question in train_questions:
                problems.append(f"{e.title!r}: eval question is also a training question")
        for q, a in pairs:
            if not 1 <= word_count(a) <= MAX_ANSWER_WORDS:
                problems.append(f"{e.title!r}: answer {a!r} must be 1-{MAX_ANSWER_WORDS} words")
            if a.lower() not in e.text.lower():
                problems.append(f"{e.title!r}: answer {a!r} does not occur in the passage")
            if not q.endswith("?") or "\n" in q:
                problems.append(f"{e.title!r}: question {q!r} must be one line ending in '?'")
    if problems:
        raise ValueError("example data is inconsistent:\n  " + "\n  ".join(problems))


def render(entries: list[Entry]) -> dict[str, str]:
    """File name -> file content for every output file."""
    passages, train, evals = [], [], []
    for i, e in enumerate(entries, start=1):
        pid = f"p{i:04d}"
        passages.append({"id": pid, "title": e.title, "text": e.text})
        train.append({"question": e.question, "answers": [e.answer], "gold_ids": [pid]})
        if e.eval_question is not None:
            evals.append({"question": e.eval_question, "answers": [e.eval_answer], "gold_ids": [pid]})

    def jsonl(rows: list[dict]) -> str:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    def lines(values: list[str]) -> str:
        return "".join(v + "\n" for v in values)

    csv_rows = [["title", "text"]] + [[p["title"], p["text"]] for p in passages[:CSV_PASSAGES]]
    return {
        "knowledge_base.jsonl": jsonl(passages),
        "qa_train.jsonl": jsonl(train),
        "qa_eval.jsonl": jsonl(evals),
        "train.source": lines([r["question"] for r in train]),
        "train.target": lines([r["answers"][0] for r in train]),
        "val.source": lines([r["question"] for r in evals]),
        "val.target": lines([r["answers"][0] for r in evals]),
        "knowledge_base.csv": to_csv(csv_rows),
    }


def to_csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write(out_dir: Path) -> dict[str, str]:
    """Check the tables, then (re)write every output file under out_dir."""
    entries = all_entries()
    check(entries)
    files = render(entries)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (out_dir / name).write_text(content, encoding="utf-8")
    return files


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else Path(__file__).resolve().parent
    files = write(out_dir)
    n_eval = files["val.source"].count("\n")
    n_train = files["train.source"].count("\n")
    print(
        f"wrote {len(files)} files to {out_dir}: {n_train} passages/training questions, {n_eval} eval questions"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
