//! A deterministic generator of realistic people: the same seed and spec always give
//! the same people, in the same order. Names carry accents, apostrophes and compound
//! surnames; some people have no e-mail, share an e-mail with someone else (in other
//! case or with stray spaces), are converted, opted out, or carry the sync filter flag.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Lead sources every seeded CRM offers as picklist options.
pub const LEAD_SOURCES: &[&str] = &[
    "Advertisement",
    "Cold Call",
    "Web Form",
    "Trade Show",
    "Partner",
    "Seminar",
    "Chat",
];
/// Lead statuses every seeded CRM offers as picklist options.
pub const LEAD_STATUSES: &[&str] = &[
    "Not Contacted",
    "Attempted to Contact",
    "Contact in Future",
    "Contacted",
    "Pre-Qualified",
    "Junk Lead",
];
/// Industries every seeded CRM offers as picklist options.
pub const INDUSTRIES: &[&str] = &[
    "Software",
    "Manufacturing",
    "Retail",
    "Healthcare",
    "Education",
    "Finance",
    "Real Estate",
    "Consulting",
    "Media",
    "Energy",
];
/// Platform lifecycle states written to the CRMs' `status` field.
pub const STATUSES: &[&str] = &["Prospect", "Client"];
/// Values of the `source` custom field.
pub const SOURCES: &[&str] = &["Website", "Form", "Event", "Import", "Partner"];
/// Values that are in no picklist: what a CRM holds after an option was removed.
pub const UNKNOWN_PICKLIST_VALUES: &[&str] = &["Aerospace & Defence", "Agriculture", "Non-profit"];

const FIRST_NAMES: &[&str] = &[
    "Éloïse",
    "François",
    "Zoë",
    "Björn",
    "Nuño",
    "Anaïs",
    "Jérôme",
    "Chloé",
    "Søren",
    "Małgorzata",
    "José",
    "Inès",
    "Noël",
    "Léa",
    "Ørjan",
    "Çağla",
    "Émile",
    "Renée",
    "Håkon",
    "Zuzana",
    "Lucía",
    "Sébastien",
    "Maëlle",
    "João",
    "Aoife",
    "Siobhán",
    "Thomas",
    "Marie",
    "Jean",
    "Sarah",
    "David",
    "Laura",
    "Paul",
    "Emma",
    "Lucas",
    "Julie",
    "Hugo",
    "Camille",
    "Nicolas",
    "Claire",
    "Pierre",
    "Anne",
    "Marc",
    "Sophie",
    "Louis",
    "Alice",
    "Antoine",
    "Manon",
    "Jean-Baptiste",
    "Marie-Claire",
];
const LAST_NAMES: &[&str] = &[
    "Dubois-Martin",
    "García Márquez",
    "van der Berg",
    "O'Brien",
    "Le Goff",
    "de la Fontaine",
    "Müller",
    "Schäfer",
    "Nuñez",
    "Kowalczyk",
    "Łukasiewicz",
    "Østergaard",
    "Lefèvre",
    "Da Silva",
    "D'Angelo",
    "Martin",
    "Bernard",
    "Thomas",
    "Petit",
    "Robert",
    "Richard",
    "Durand",
    "Moreau",
    "Laurent",
    "Simon",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Girard",
    "Bonnet",
    "Dupont",
    "Lambert",
    "Fontaine",
    "Rousseau",
    "Mercier",
    "Blanc",
    "Guérin",
    "Boyer",
    "Gauthier",
    "Perrin",
    "Morin",
    "Chevalier",
    "Nguyen",
    "Ferreira",
    "Fernández López",
    "Smith-Jones",
];
const COMPANY_STEMS: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Tyrell",
    "Soylent",
    "Cyberdyne",
    "Aperture",
    "Nakatomi",
    "Wonka",
    "Gringotts",
    "Monarch",
    "Oscorp",
    "Pied Piper",
    "Massive Dynamic",
    "Blue Sun",
    "Éclair",
    "Crème",
    "Château",
    "Brasserie Duval",
    "Atelier Noé",
];
const COMPANY_SUFFIXES: &[&str] = &[
    "SA", "SAS", "GmbH", "Ltd", "Inc.", "SARL", "BV", "AG", "& Co", "Group",
];
const JOB_TITLES: &[&str] = &[
    "Marketing Manager",
    "Head of Sales",
    "CEO",
    "CTO",
    "Account Executive",
    "Directeur commercial",
    "Responsable marketing",
    "Office Manager",
    "Procurement Lead",
    "Chief Growth Officer",
    "Business Developer",
    "Product Owner",
    "Ingénieure R&D",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("Paris", "France", "+33"),
    ("Lyon", "France", "+33"),
    ("Nantes", "France", "+33"),
    ("Bruxelles", "Belgium", "+32"),
    ("Genève", "Switzerland", "+41"),
    ("München", "Germany", "+49"),
    ("Madrid", "Spain", "+34"),
    ("Kraków", "Poland", "+48"),
    ("København", "Denmark", "+45"),
    ("Dublin", "Ireland", "+353"),
    ("Montréal", "Canada", "+1"),
    ("London", "United Kingdom", "+44"),
];
const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "outlook.fr",
    "yahoo.fr",
    "proton.me",
    "orange.fr",
];

/// The most people one seed call generates.
pub const MAX_PEOPLE: usize = 2_000_000;

/// What to generate. Shares are probabilities between 0 and 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedSpec {
    /// The seed: the same seed gives the same people.
    pub seed: u64,
    /// How many people.
    pub people: usize,
    /// Share with no e-mail address.
    pub missing_email: f64,
    /// Share reusing an earlier person's e-mail (sometimes in other case or with spaces).
    pub duplicate_email: f64,
    /// Share of converted leads (Zoho) / clients.
    pub converted: f64,
    /// Share carrying the sync filter flag (`sync_to_plezi` = yes).
    pub filter: f64,
    /// Share opted out of e-mail.
    pub opted_out: f64,
    /// Share with no first name.
    pub missing_first_name: f64,
    /// Share with no name at all (only for platform contacts: CRMs refuse them).
    pub missing_name: f64,
    /// Share whose industry is a value no picklist holds.
    pub unknown_picklist: f64,
}

impl Default for SeedSpec {
    fn default() -> Self {
        Self {
            seed: 42,
            people: 100,
            missing_email: 0.05,
            duplicate_email: 0.03,
            converted: 0.10,
            filter: 0.60,
            opted_out: 0.05,
            missing_first_name: 0.03,
            missing_name: 0.0,
            unknown_picklist: 0.02,
        }
    }
}

impl SeedSpec {
    /// Checks the shares; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let shares = [
            ("missing_email", self.missing_email),
            ("duplicate_email", self.duplicate_email),
            ("converted", self.converted),
            ("filter", self.filter),
            ("opted_out", self.opted_out),
            ("missing_first_name", self.missing_first_name),
            ("missing_name", self.missing_name),
            ("unknown_picklist", self.unknown_picklist),
        ];
        for (name, share) in shares {
            if !(0.0..=1.0).contains(&share) || share.is_nan() {
                return Err(format!(
                    "{name}: must be a share between 0 and 1, got {share}"
                ));
            }
        }
        // A million records of one module, with the people that become
        // the other module's beside them (Zoho makes one in seven a contact).
        if self.people > MAX_PEOPLE {
            return Err(format!("people: at most {MAX_PEOPLE}, got {}", self.people));
        }
        Ok(())
    }
}

/// One generated person, neutral to any CRM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Position in the generated list.
    pub index: usize,
    /// First name, with accents; absent for some.
    pub first_name: Option<String>,
    /// Last name (compound surnames included); absent only with `missing_name`.
    pub last_name: Option<String>,
    /// E-mail as a person typed it (a duplicate may differ in case or carry spaces).
    pub email: Option<String>,
    /// A second, non-primary e-mail for some people.
    pub secondary_email: Option<String>,
    /// Office phone in international format.
    pub phone: Option<String>,
    /// Mobile phone.
    pub mobile: Option<String>,
    /// Company name.
    pub company: Option<String>,
    /// Job title.
    pub job_title: Option<String>,
    /// City.
    pub city: String,
    /// Country.
    pub country: String,
    /// Industry picklist value (sometimes one no picklist holds).
    pub industry: String,
    /// Lead source picklist value.
    pub lead_source: String,
    /// Lead status picklist value.
    pub lead_status: String,
    /// Value of the `source` custom field.
    pub source: String,
    /// Behaviour score, 0 to 100.
    pub score: i64,
    /// Carries the sync filter flag.
    pub sync_flag: bool,
    /// A converted lead / a client.
    pub converted: bool,
    /// Opted out of e-mail.
    pub opted_out: bool,
    /// Created this many seconds before "now".
    pub created_secs_ago: i64,
    /// Last modified this many seconds before "now" (never before creation).
    pub modified_secs_ago: i64,
}

impl Person {
    /// "First Last", or whichever part exists.
    pub fn full_name(&self) -> Option<String> {
        match (&self.first_name, &self.last_name) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(f), None) => Some(f.clone()),
            (None, Some(l)) => Some(l.clone()),
            (None, None) => None,
        }
    }
}

/// Generates `spec.people` people.
pub fn generate(spec: &SeedSpec) -> Vec<Person> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut people: Vec<Person> = Vec::with_capacity(spec.people);
    for index in 0..spec.people {
        let mut first_name = Some(pick(&mut rng, FIRST_NAMES).to_owned());
        let mut last_name = Some(pick(&mut rng, LAST_NAMES).to_owned());
        if rng.random_bool(spec.missing_name) {
            first_name = None;
            last_name = None;
        } else if rng.random_bool(spec.missing_first_name) {
            first_name = None;
        }
        let company = format!(
            "{} {}",
            pick(&mut rng, COMPANY_STEMS),
            pick(&mut rng, COMPANY_SUFFIXES)
        );
        let (city, country, prefix) = *CITIES.choose(&mut rng).expect("cities");
        let domain = if rng.random_bool(0.3) {
            pick(&mut rng, FREE_MAIL).to_owned()
        } else {
            format!(
                "{}.{}",
                slug(company.split_whitespace().next().unwrap_or("example")),
                tld(country)
            )
        };
        let email = if rng.random_bool(spec.missing_email) {
            None
        } else if !people.is_empty() && rng.random_bool(spec.duplicate_email) {
            let earlier = &people[rng.random_range(0..people.len())];
            earlier.email.as_ref().map(|e| variant_of(&mut rng, e))
        } else {
            let local = email_local(first_name.as_deref(), last_name.as_deref(), index);
            Some(format!("{local}@{domain}"))
        };
        let secondary_email = email.as_ref().filter(|_| rng.random_bool(0.1)).map(|e| {
            format!(
                "{}.perso@{}",
                e.trim().split('@').next().unwrap_or("x"),
                pick(&mut rng, FREE_MAIL)
            )
        });
        let phone = rng
            .random_bool(0.85)
            .then(|| phone_number(&mut rng, prefix));
        let mobile = rng.random_bool(0.5).then(|| phone_number(&mut rng, prefix));
        let industry = if rng.random_bool(spec.unknown_picklist) {
            pick(&mut rng, UNKNOWN_PICKLIST_VALUES)
        } else {
            pick(&mut rng, INDUSTRIES)
        }
        .to_owned();
        let converted = rng.random_bool(spec.converted);
        let created_secs_ago = rng.random_range(3_600..90 * 86_400);
        let modified_secs_ago = rng.random_range(0..created_secs_ago);
        people.push(Person {
            index,
            first_name,
            last_name,
            email,
            secondary_email,
            phone,
            mobile,
            company: rng.random_bool(0.9).then_some(company),
            job_title: rng
                .random_bool(0.8)
                .then(|| pick(&mut rng, JOB_TITLES).to_owned()),
            city: city.to_owned(),
            country: country.to_owned(),
            industry,
            lead_source: pick(&mut rng, LEAD_SOURCES).to_owned(),
            lead_status: pick(&mut rng, LEAD_STATUSES).to_owned(),
            source: pick(&mut rng, SOURCES).to_owned(),
            score: rng.random_range(0..=100),
            sync_flag: rng.random_bool(spec.filter),
            converted,
            opted_out: rng.random_bool(spec.opted_out),
            created_secs_ago,
            modified_secs_ago,
        });
    }
    people
}

fn pick<'a>(rng: &mut ChaCha8Rng, from: &[&'a str]) -> &'a str {
    from.choose(rng).copied().unwrap_or("")
}

/// The same address as typed by someone else: other case, or stray spaces.
fn variant_of(rng: &mut ChaCha8Rng, email: &str) -> String {
    match rng.random_range(0..3) {
        0 => email.to_owned(),
        1 => email.to_uppercase(),
        _ => format!(" {email} "),
    }
}

fn email_local(first: Option<&str>, last: Option<&str>, index: usize) -> String {
    let parts: Vec<String> = [first, last]
        .into_iter()
        .flatten()
        .map(slug)
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        format!("contact{index}")
    } else {
        // The index keeps generated addresses unique; duplicates come only from `duplicate_email`.
        format!("{}{}", parts.join("."), index)
    }
}

fn tld(country: &str) -> &'static str {
    match country {
        "France" => "fr",
        "Belgium" => "be",
        "Switzerland" => "ch",
        "Germany" => "de",
        "Spain" => "es",
        "Poland" => "pl",
        "Denmark" => "dk",
        "Ireland" => "ie",
        "Canada" => "ca",
        "United Kingdom" => "co.uk",
        _ => "com",
    }
}

fn phone_number(rng: &mut ChaCha8Rng, prefix: &str) -> String {
    let digits: String = (0..9)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect();
    format!(
        "{prefix} {} {} {} {}",
        &digits[0..1],
        &digits[1..3],
        &digits[3..6],
        &digits[6..9]
    )
}

/// Lower-case ASCII for e-mail local parts and domains: accents folded, spaces and
/// apostrophes dropped, hyphens kept.
pub fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let folded = match c {
            'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' | 'À' | 'Á' | 'Â' | 'Ä' => "a",
            'ç' | 'Ç' | 'ć' => "c",
            'è' | 'é' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' | 'ę' => "e",
            'ì' | 'í' | 'î' | 'ï' | 'İ' | 'ı' => "i",
            'ñ' | 'Ñ' | 'ń' => "n",
            'ò' | 'ó' | 'ô' | 'ö' | 'õ' | 'ø' | 'Ø' | 'Ö' | 'Ó' => "o",
            'ù' | 'ú' | 'û' | 'ü' | 'Ü' => "u",
            'ý' | 'ÿ' => "y",
            'ł' | 'Ł' => "l",
            'ś' | 'Ś' => "s",
            'ż' | 'ź' | 'Ż' => "z",
            'ğ' => "g",
            'æ' => "ae",
            'œ' => "oe",
            'ß' => "ss",
            'Å' => "a",
            '-' => "-",
            c if c.is_ascii_alphanumeric() => {
                out.push(c.to_ascii_lowercase());
                continue;
            }
            _ => "",
        };
        out.push_str(folded);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_people() {
        let spec = SeedSpec {
            people: 300,
            ..SeedSpec::default()
        };
        assert_eq!(generate(&spec), generate(&spec));
        let other = SeedSpec {
            seed: 43,
            ..spec.clone()
        };
        assert_ne!(generate(&spec), generate(&other));
    }

    #[test]
    fn shares_come_out_close_to_the_spec() {
        let spec = SeedSpec {
            people: 5_000,
            ..SeedSpec::default()
        };
        let people = generate(&spec);
        let share = |f: &dyn Fn(&Person) -> bool| {
            people.iter().filter(|p| f(p)).count() as f64 / people.len() as f64
        };
        assert!((share(&|p| p.email.is_none()) - 0.05).abs() < 0.02);
        assert!((share(&|p| p.converted) - 0.10).abs() < 0.02);
        assert!((share(&|p| p.sync_flag) - 0.60).abs() < 0.03);
        let mut seen = std::collections::HashSet::new();
        let duplicates = people
            .iter()
            .filter_map(|p| p.email.as_ref())
            .filter(|e| !seen.insert(e.trim().to_lowercase()))
            .count();
        assert!(duplicates > 50, "{duplicates} duplicate e-mails");
    }

    #[test]
    fn emails_are_ascii_even_for_accented_names() {
        let people = generate(&SeedSpec {
            people: 500,
            ..SeedSpec::default()
        });
        assert!(
            people
                .iter()
                .any(|p| p.full_name().is_some_and(|n| !n.is_ascii()))
        );
        for email in people.iter().filter_map(|p| p.email.as_ref()) {
            assert!(email.is_ascii() && email.contains('@'), "{email}");
        }
    }

    #[test]
    fn missing_names_only_when_asked() {
        let people = generate(&SeedSpec {
            people: 1_000,
            ..SeedSpec::default()
        });
        assert!(people.iter().all(|p| p.last_name.is_some()));
        let people = generate(&SeedSpec {
            people: 1_000,
            missing_name: 0.1,
            ..SeedSpec::default()
        });
        assert!(people.iter().any(|p| p.full_name().is_none()));
    }
}
