"""The demo's cast and phrase book: who writes to the demo user, about what, in which language.

Pure data for ``mailgen``. Every domain is under the reserved ``.example`` TLD (RFC 2606), so
nothing generated here can ever name a real mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    email: str
    lang: str
    """"en", "de", "fr", "ja", "el", "es", "pl", "cs", "tr", "zh", "ar", "ru"."""
    utc_offset: int
    """Hours east of UTC, for a realistic Date header."""


# The people the demo user corresponds with. Names cover the scripts and the header-encoding
# cases a mail client must get right: umlauts, ligatures, CJK, Greek, Cyrillic, right-to-left
# Arabic, emoji, and ASCII names that need quoting (a comma, an apostrophe).
PEOPLE: tuple[Person, ...] = (
    Person("Jürgen Groß", "juergen.gross@gross-familie.example", "de", 1),
    Person("Käthe Müller", "kaethe@mueller-bremen.example", "de", 1),
    Person("Björn Schröder", "bjoern.schroeder@werkstatt.example", "de", 1),
    Person("Anke Weiß", "anke.weiss@uni-hamburg.example", "de", 1),
    Person("Françoise Lefèvre", "francoise@atelier-lefevre.example", "fr", 1),
    Person("Élodie Garçon", "elodie.garcon@lyon.example", "fr", 1),
    Person("Benoît Lœwy", "benoit@loewy.example", "fr", 1),
    Person("Gaëlle Bénard", "gaelle.benard@nantes.example", "fr", 1),
    Person("山田 太郎", "taro.yamada@yamada.example", "ja", 9),
    Person("佐藤 花子", "hanako.sato@sato-design.example", "ja", 9),
    Person("鈴木 一郎", "ichiro@suzuki-lab.example", "ja", 9),
    Person("Γιώργος Παπαδόπουλος", "giorgos@papadopoulos.example", "el", 2),
    Person("Ελένη Νικολάου", "eleni.nikolaou@athina.example", "el", 2),
    Person("José Martínez Núñez", "jose.martinez@correo.example", "es", 1),
    Person("Begoña Ibáñez", "begona@ibanez-arquitectos.example", "es", 1),
    Person("Łukasz Wróbel", "lukasz.wrobel@krakow.example", "pl", 1),
    Person("Zofia Kędzierska", "zofia.k@poczta.example", "pl", 1),
    Person("Jiří Dvořák", "jiri.dvorak@brno.example", "cs", 1),
    Person("Ayşe Yılmaz", "ayse.yilmaz@istanbul.example", "tr", 3),
    Person("王小明", "xiaoming.wang@beijing.example", "zh", 8),
    Person("ليلى حداد", "laila.haddad@beirut.example", "ar", 2),
    Person("Дмитрий Иванов", "dmitry.ivanov@spb.example", "ru", 3),
    Person("Alice Example", "alice@example.org", "en", -5),
    Person("Priya Raman", "priya.raman@example.net", "en", 5),
    Person("Sam O'Brien", "sam.obrien@example.com", "en", 0),
    Person("Chen, Wei", "wei.chen@example.com", "en", -8),
    Person("Tom Smith", "tom@smith-builders.example", "en", 0),
    Person("Maria Rossi", "maria.rossi@example.org", "en", 1),
    Person("Pat 🌻 Gardener", "pat@allotments.example", "en", 0),
    Person("Noor Khan", "noor.khan@example.net", "en", 0),
    Person("Olu Adeyemi", "olu@adeyemi.example", "en", 1),
    Person("Grace Hopper-Lee", "grace@navy-yard.example", "en", -5),
)

# The family and close colleagues: most personal threads are with these.
CLOSE = (0, 1, 4, 8, 11, 22, 23, 24, 26, 28)

# python-dev regulars (a fictional list: nothing here quotes a real person).
LIST_MEMBERS: tuple[Person, ...] = (
    Person("Guido van Example", "guido@python.example", "en", 1),
    Person("Łukasz Langa-Example", "lukasz@python.example", "en", 1),
    Person("Petr Viktorín", "petr@python.example", "en", 1),
    Person("Victor Stinner-Example", "victor@python.example", "en", 1),
    Person("Mariatta W.", "mariatta@python.example", "en", -8),
    Person("Carol Willing", "carol@python.example", "en", -8),
    Person("Hugo van K.", "hugo@python.example", "en", 2),
    Person("Serhiy Storchaka-Example", "serhiy@python.example", "en", 2),
    Person("井上 雅之", "masayuki@python.example", "en", 9),
    Person("Barry W.", "barry@python.example", "en", -5),
)

LIST_ID = "Python development <python-dev.lists.python.example>"
LIST_ADDRESS = "python-dev@lists.python.example"

GREETINGS: dict[str, tuple[str, ...]] = {
    "en": ("Hi {first},", "Hello {first},", "Dear {first},", "Hey {first}!", "{first},"),
    "de": ("Hallo {first},", "Liebe Grüße vorab, {first}!", "Moin {first},", "Servus {first},"),
    "fr": ("Bonjour {first},", "Salut {first} !", "Chère {first},", "Coucou {first},"),
    "ja": ("{first}さん", "{first}様", "{first}さん、こんにちは。"),
    "el": ("Γεια σου {first},", "Αγαπητή {first},", "Καλημέρα {first},"),
    "es": ("Hola {first}:", "¡Buenas, {first}!", "Querida {first}:"),
    "pl": ("Cześć {first},", "Dzień dobry {first},"),
    "cs": ("Ahoj {first},", "Dobrý den, {first},"),
    "tr": ("Merhaba {first},", "Selam {first},"),
    "zh": ("{first}，你好！", "亲爱的{first}："),
    "ar": ("مرحباً {first}،", "عزيزتي {first}،"),
    "ru": ("Привет, {first}!", "Здравствуйте, {first}!"),
}

SIGNOFFS: dict[str, tuple[str, ...]] = {
    "en": ("Cheers,", "Best,", "Thanks!", "All the best,", "Speak soon,", "Kind regards,"),
    "de": ("Viele Grüße", "Liebe Grüße", "Bis bald!", "Schöne Grüße aus dem Norden"),
    "fr": ("Bises,", "À bientôt,", "Bien à toi,", "Cordialement,"),
    "ja": ("よろしくお願いします。", "ではまた。", "取り急ぎ失礼します。"),
    "el": ("Φιλιά,", "Τα λέμε,", "Με εκτίμηση,"),
    "es": ("Un abrazo,", "Saludos,", "¡Hasta pronto!"),
    "pl": ("Pozdrawiam,", "Do zobaczenia,"),
    "cs": ("S pozdravem,", "Měj se,"),
    "tr": ("Sevgiler,", "Görüşmek üzere,"),
    "zh": ("祝好！", "再联系。"),
    "ar": ("مع تحياتي،", "إلى اللقاء،"),
    "ru": ("Всего доброго,", "До встречи,"),
}

SUBJECTS: dict[str, tuple[str, ...]] = {
    "en": (
        "Lunch on {day}?",
        "Notes from today's meeting",
        "Quick question about {topic}",
        "Photos from the weekend",
        "Are we still on for {day}?",
        "{topic}: first draft",
        "Thoughts on {topic}",
        "Tickets for the concert",
        "Book recommendation",
        "Moving the call to {day}",
        "Your feedback on {topic}",
        "Travel plans for {month}",
        "Happy birthday! 🎂",
        "Recipe you asked for",
        "Small favour",
    ),
    "de": (
        "Treffen nächste Woche",
        "Grüße aus München",
        "Frage zur Rechnung Nr. {n}",
        "Übergabe der Schlüssel am {day_de}",
        "Grillabend im Garten? 🔥",
        "Protokoll der Sitzung vom {n}. {month_de}",
        "Kurze Rückfrage zu {topic_de}",
        "Fahrräder für die Tour",
    ),
    "fr": (
        "Réunion de vendredi",
        "Ça te dit un café ?",
        "Les photos de l'été",
        "Devis pour la rénovation",
        "Dîner chez nous le {n} {month_fr} ?",
        "Question rapide à propos de {topic_fr}",
        "Vacances en Bretagne 🌊",
    ),
    "ja": (
        "来週の打ち合わせについて",
        "資料の送付",
        "お疲れ様です",
        "花見の予定 🌸",
        "{month_num}月の出張の件",
    ),
    "el": (
        "Συνάντηση την Πέμπτη",
        "Φωτογραφίες από τις διακοπές",
        "Ερώτηση για το έργο",
        "Καλό ταξίδι! ✈️",
    ),
    "es": ("¿Quedamos el sábado?", "Presupuesto del año {year}", "Fotos de la boda 💍"),
    "pl": ("Zdjęcia z wycieczki", "Spotkanie w środę?", "Pytanie o umowę"),
    "cs": ("Dotaz k projektu", "Výlet na Šumavu", "Zápis z porady"),
    "tr": ("Toplantı notları", "Hafta sonu planı", "Çay içelim mi? ☕"),
    "zh": ("周末聚会", "关于下周的会议", "新年快乐 🧧"),
    "ar": ("اجتماع الأسبوع المقبل", "صور الرحلة", "سؤال سريع"),
    "ru": ("Встреча в пятницу", "Фотографии с дачи", "Вопрос по проекту"),
}

SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "I had a look at the numbers and they mostly add up.",
        "Could you send me the latest version when you get a chance?",
        "Let's keep it short, I have a train at six.",
        "The venue confirmed we can have the back room.",
        "I'm not sure the second option works for everyone.",
        "Thanks again for helping out last week, it made a real difference.",
        "Attached is nothing, but I meant to mention the spreadsheet is in the shared folder.",
        "We could also just push it by a week; nobody would mind.",
        "The kids loved the museum, especially the whale skeleton.",
        "I'll bring the cables and the projector.",
        "Does Thursday after four work for you?",
        "My flight lands at 9:40, so I should be there by eleven.",
        "Honestly, I think we are overthinking this.",
        "The contractor says the roof will be done by the end of the month.",
        "I found the old photos in a box in the attic!",
        "Remember to water the tomatoes if it stays this dry.",
        "I've put a first draft in the usual place; comments welcome.",
        "Let me know if anything is unclear.",
        "The weather forecast looks good for the weekend.",
        "We need to decide by Friday, otherwise the offer expires.",
    ),
    "de": (
        "Ich habe mir die Unterlagen angesehen und finde sie gut.",
        "Kannst du mir bitte die aktuelle Version schicken?",
        "Das Wetter soll am Wochenende schön werden, also Grillen?",
        "Die Schlüssel liegen bei Frau Schäfer im Erdgeschoss.",
        "Wir müssen uns bis Freitag entscheiden.",
        "Übrigens: Die Straßenbahn fährt ab Montag wieder normal.",
        "Ich bringe Kuchen mit, Käsekuchen natürlich.",
        "Grüße auch an die ganze Familie!",
        "Der Handwerker kommt erst nächste Woche, leider.",
        "Für Rückfragen bin ich jederzeit erreichbar.",
    ),
    "fr": (
        "J'ai regardé les documents, ça me paraît très bien.",
        "Tu pourrais m'envoyer la dernière version quand tu as un moment ?",
        "On pourrait se retrouver au café près de la gare.",
        "Les enfants ont adoré la plage, même sous la pluie.",
        "Il faudrait qu'on décide avant vendredi.",
        "Je t'embrasse, et à très vite !",
        "Le devis est un peu élevé, mais ça reste raisonnable.",
        "N'hésite pas si tu as des questions.",
    ),
    "ja": (
        "資料を確認しました。問題ないと思います。",
        "来週の火曜日はいかがでしょうか。",
        "お手数ですが、最新版を送っていただけますか。",
        "先日はありがとうございました。",
        "桜がきれいに咲いています。",
        "詳細は添付の資料をご覧ください。",
    ),
    "el": (
        "Είδα τα έγγραφα και μου φαίνονται μια χαρά.",
        "Μπορείς να μου στείλεις την τελευταία έκδοση;",
        "Ο καιρός στην Αθήνα είναι υπέροχος αυτή την εβδομάδα.",
        "Τα λέμε την Πέμπτη στο γνωστό καφέ.",
        "Ευχαριστώ πολύ για τη βοήθεια!",
    ),
    "es": (
        "He revisado los documentos y me parecen bien.",
        "¿Me mandas la última versión cuando puedas?",
        "El sábado hace buen tiempo, ¿vamos a la sierra?",
        "Muchas gracias por todo.",
    ),
    "pl": (
        "Przejrzałem dokumenty i wszystko wygląda dobrze.",
        "Czy możesz przesłać mi najnowszą wersję?",
        "Pogoda w Krakowie jest piękna.",
    ),
    "cs": (
        "Prošel jsem dokumenty a vypadá to dobře.",
        "Můžeš mi poslat nejnovější verzi?",
        "Na Šumavě už napadl první sníh.",
    ),
    "tr": (
        "Belgelere baktım, her şey yolunda görünüyor.",
        "Son sürümü gönderebilir misin?",
        "İstanbul'da hava çok güzel.",
    ),
    "zh": (
        "我看过文件了，没有问题。",
        "你方便的时候把最新版本发给我吧。",
        "周末天气不错，我们去爬山吧。",
    ),
    "ar": (
        "راجعت المستندات وكل شيء يبدو جيداً.",
        "هل يمكنك إرسال النسخة الأخيرة؟",
        "شكراً جزيلاً على المساعدة.",
    ),
    "ru": (
        "Я посмотрел документы, всё в порядке.",
        "Пришли, пожалуйста, последнюю версию.",
        "На даче уже созрела клубника.",
    ),
}

TOPICS = (
    "the budget",
    "the garden shed",
    "the conference talk",
    "the school trip",
    "the new office",
    "the quarterly report",
    "the kitchen renovation",
    "the hiking route",
    "the choir concert",
    "the website redesign",
)
TOPICS_DE = ("dem Angebot", "der Heizkostenabrechnung", "dem Umzug", "dem Vereinsfest")
TOPICS_FR = ("la facture", "l'assemblée générale", "nos vacances", "la crémaillère")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
DAYS_DE = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag")
MONTHS = ("March", "April", "May", "June", "September", "October")
MONTHS_DE = ("März", "April", "Mai", "Juni", "Oktober", "Dezember")
MONTHS_FR = ("février", "mars", "août", "décembre")

LIST_TOPICS = (
    "Free-threading build: status of the per-object locks",
    "PEP 9xx: Lazy imports, take three",
    "Deprecating the old getopt-style helpers",
    "asyncio.TaskGroup cancellation semantics",
    "Release schedule for the next feature release",
    "Making the REPL colour output respect NO_COLOR",
    "Unicode 17 update for unicodedata",
    "Should email.policy.default become the default policy?",
    "Buildbot failures on the ARM64 workers",
    "Stable ABI for the new vectorcall helpers",
    "Removing the last distutils shims",
    "Faster startup: frozen modules for the stdlib",
)

LIST_SENTENCES = (
    "I think the compatibility story is the important part here.",
    "Has anyone measured the impact on the pyperformance suite?",
    "We already discussed this on the issue tracker; see the linked thread.",
    "+1 from me, as long as there is a deprecation period.",
    "I'm worried about third-party extension modules that poke at the internals.",
    "The benchmarks show a 3-7% improvement on startup.",
    "Can we get this into the next alpha so people can try it?",
    "This needs a PEP, in my opinion.",
    "The Steering Council will look at it next week.",
    "Thanks for writing this up so clearly.",
    "I'd prefer a keyword-only argument over a new function.",
    "The docs should explain the thread-safety guarantees explicitly.",
)

LIST_CODE = (
    "    async with asyncio.TaskGroup() as tg:\n        tg.create_task(fetch(url))\n",
    "    >>> import sys\n    >>> sys._is_gil_enabled()\n    False\n",
    "    $ ./python -X importtime -c 'import email' 2>&1 | tail -3\n",
    "    def f(*, strict: bool = True) -> None: ...\n",
)

SPAM_SUBJECTS = (
    "Congratulations!!! You have WON €1.000.000",
    "💰 Double your Bitcoin in 24 hours 💰",
    "Ваш приз ждёт вас — подтвердите сегодня",
    "セール最終日！最大90%オフ",
    "RE: Invoice overdue - immediate action required",
    "Your mailbox is almost full (98%)",
    "Dernière chance : votre colis est en attente",
    "Hot singles in your area 😍",
    "URGENT business proposal from the desk of Dr. Example",
    "Ihr Konto wurde gesperrt – jetzt verifizieren",
)

SPAM_SENDERS = (
    ("Lottery Commission", "winner@lotto-prize.example"),
    ("Crypto Desk 🚀", "profit@moonshot.example"),
    ("Служба поддержки", "support@prize-ru.example"),
    ("Mega Sale ショップ", "sale@mega-shop.example"),
    ("Accounts Payable", "billing@invoices-now.example"),
    ("Mail Administrator", "admin@mailbox-quota.example"),
    ("La Poste Service", "colis@suivi-colis.example"),
    ("Dating Service", "hello@singles.example"),
    ("Dr. Example Barrister", "dr.example@proposal.example"),
    ("Sicherheitsteam", "sicherheit@konto-pruefung.example"),
)
