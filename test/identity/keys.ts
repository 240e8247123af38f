// Fixed test keys for the identity project: vitest.config.ts gives the
// public set to the Worker as AUTH_JWKS, the tests sign with the private
// halves. Generated once with jose's generateKeyPair; they protect nothing.

export const JWT_SECRET = "identity-test-secret-0123456789abcdef";
export const ISSUER = "https://host.example";
export const AUDIENCE = "edge-chat";

export const RS256_PRIVATE = {
  kty: "RSA",
  n: "6GGkw-utHKCL2znAiIJG6-JyYsvrugB-6FzxrIpllfRUXV49DhJcGreIiUsQABg3p5pWBYKvjDVqkeK-kcfWJmvCGfZaSwf0gZFnriEAy2msvThsWLnf1nVxrA-wmkSJxZqauF6sP3SqFtFLLeOqXmAkWEjr8M04pSZed55zyZlmt_dj9jnZYB9ho-RB3-_R0WTJlRvce1MGQ-ZunZ5LZzkzWdvMRQbm-z7CLiHVLEkjv_Yya4wE39oAL8QBSo-rLxCVaDI1kUxuxPuQf6-EtgqyCoLUJnf9YrfV9d_M5F9tYD1jNkQ-uxd5yL2CU-r3Kz3Jw6q33wc9lu_AJOPpaw",
  e: "AQAB",
  d: "OelvouXed_ZotEMhwMNawllmMUnpnqqV9fmHvvykkWjZB4W_SHz52CyqCbEbtTJT2GCFlIz7i8EaJG4yGOmI7H1JW6gB25YJcKrYgFQ4OvlEc8mWcswrxOny4LLuS5vOC-FaMp1hZtT_uH0DM9X7dNaX6CqQJiw2tC2qODxUVcZ734weq7FkV_UnAAlxadQwrrNgOChWdvdNzG6rhJhrnwDOIxgTl6HJJW6MCS7P7WLKk85jSxczRF8M-3yczWGKRZ8B4oauFGt8rD9g3bivVAIIf-nN5bN5LaGg3m3p20Op34_mAKQo843sDgkkK8_GsCYiqjbjkLGFQVsFR1MM9Q",
  p: "_hlVQ80uDDmBEtuM-yIKZZfgBZVfxNOmZeFEJEld3n08wv8qm_8cYnXkqkuYCjERLpCSE39raajP8il3P-rzp3R1PQ4QWxDnslcAgJsbG203sH-YSIYj-YJp1cocnwlVwCKbMyA7ldrrDP-_ydQ2wyDn1dxcjiVvRrVo26a5uic",
  q: "6h63OEMwlptUPVmOW0NSX9n_qzeo3bHRtywGeSTciatuZX5bCDLVpp3rFrCoQw8NCsxkmOhfnHvGF-wdTgjSzzWzR5aCLZbaitsmtI6vFo16zooWqeKn591YZIhKgZu4pXx9rnOPRNLOLIFvWxy-yI4kuQiIr7MSX5ZHPLvKdR0",
  dp: "uRTKvnAdMlpQYeP5dJL-77EIRAjhkQR5F4xVjfjCnuSp9X7XEnlnu3AT9tbJD-NdmIVFYV5WZsfHb6Q0cCI7B6YUHzy3PR27JnOosgRIYlnTToQh7_GFEqCjZk2pO04ZX7HVShAYVrb2rqk6kVA58zdspqGz6PXrb52Dmzp93dE",
  dq: "VkLY-TbwaR10LWKY7BFjAYQeCqToaD7DaX0kKXCmfWcXtveWbO_l_o0C-IpAhOy_vnHOwvQjflGwjFHn_j-MBOLhWogfENMbVLwoh7Bm3KVmUUFZ1mB3wxuwHOKGqTiKERdMa4GSkSYm5wkN0YFG3jhZWX_GdQ5Cv8tsFfmPQBU",
  qi: "Rh7okwG5bhyA9UmVS7K5AhmbMY6I3WVXc_FIorq6vVJ1nhcvPgFq2xRbeCabzlQtja7yfD98jfKv5Jhk0U7OWTLPFNBXRciV-ym8rRwsP5tACsE5INbAOOSM_H028hb7x0HhiCh0V3RCzay0_JPraZwHT9hsqG0ZGETFgBjqEUU",
  kid: "rs-1",
};
export const ES256_PRIVATE = {
  kty: "EC",
  x: "KCTfcy4ZfkLnTFHJunAzaIIj_Cxtajz9bbaj73phPm4",
  y: "sk7f8GgRZUcbamSYjnrhk_fNTMJI1FzKN5VeAhjZ2qA",
  crv: "P-256",
  d: "lOQvhE743A1iMv7R2Vg69HNPLLExtZq_D5MZuAiJtCY",
  kid: "es-1",
};

export const PUBLIC_JWKS = {
  keys: [
    {
      kty: "RSA",
      n: "6GGkw-utHKCL2znAiIJG6-JyYsvrugB-6FzxrIpllfRUXV49DhJcGreIiUsQABg3p5pWBYKvjDVqkeK-kcfWJmvCGfZaSwf0gZFnriEAy2msvThsWLnf1nVxrA-wmkSJxZqauF6sP3SqFtFLLeOqXmAkWEjr8M04pSZed55zyZlmt_dj9jnZYB9ho-RB3-_R0WTJlRvce1MGQ-ZunZ5LZzkzWdvMRQbm-z7CLiHVLEkjv_Yya4wE39oAL8QBSo-rLxCVaDI1kUxuxPuQf6-EtgqyCoLUJnf9YrfV9d_M5F9tYD1jNkQ-uxd5yL2CU-r3Kz3Jw6q33wc9lu_AJOPpaw",
      e: "AQAB",
      kid: "rs-1",
    },
    {
      kty: "EC",
      x: "KCTfcy4ZfkLnTFHJunAzaIIj_Cxtajz9bbaj73phPm4",
      y: "sk7f8GgRZUcbamSYjnrhk_fNTMJI1FzKN5VeAhjZ2qA",
      crv: "P-256",
      kid: "es-1",
    },
  ],
};
